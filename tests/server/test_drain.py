"""Stopping and reloading under load: SIGTERM drains (DRAIN_S) before the process stops, and
`kill -HUP` of the gunicorn master replaces its workers without a failed request."""

import os
import signal
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx2 as httpx
import pytest
import redis

from service.server.embedded_redis import EmbeddedRedis
from tests.support.served import serve

pytestmark = pytest.mark.served

BODY = {"input": "some_input_data"}


@dataclass
class Client:
    """One keep-alive client sending requests back to back, in a thread, until told to stop
    or, with `stop_on_not_ready`, until its /readyz answers 503. Every exception is an error."""

    url: str
    asynchronous: bool = False
    stop_on_not_ready: bool = False
    answers: list[tuple[float, int, str]] = field(default_factory=list)  # time, status, Connection
    errors: list[str] = field(default_factory=list)
    job_ids: list[str] = field(default_factory=list)
    not_ready_at: float | None = None
    stopping: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        headers = {"async_mode": "true"} if self.asynchronous else {}
        with httpx.Client(base_url=self.url, timeout=10) as client:
            sent = 0
            while not self.stopping.is_set():
                try:
                    if sent % 10 == 0:
                        ready = client.get("/readyz")
                        if ready.status_code == 503 and self.not_ready_at is None:
                            self.not_ready_at = time.monotonic()
                            if self.stop_on_not_ready:
                                return
                    response = client.post("/predict", json=BODY, headers=headers)
                    self.answers.append(
                        (
                            time.monotonic(),
                            response.status_code,
                            response.headers.get("connection", ""),
                        )
                    )
                    if response.status_code == 202:
                        self.job_ids.append(response.json()["prediction_id"])
                except httpx.HTTPError as exc:
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                sent += 1


def start(clients: list[Client]) -> list[threading.Thread]:
    threads = [threading.Thread(target=c.run, daemon=True) for c in clients]
    for thread in threads:
        thread.start()
    return threads


def test_sigterm_turns_readyz_503_first_and_serves_out_the_drain_period(
    tmp_path: Path, redis_server: EmbeddedRedis
) -> None:
    env = {"REDIS_URL": redis_server.url, "DRAIN_S": "2", "KEY_PREFIX": f"drain-{uuid.uuid4()}:"}
    with serve(env, tmp_path) as served:
        polite = [Client(served.url, stop_on_not_ready=True) for _ in range(2)]
        stubborn = Client(served.url)  # keeps sending through the drain period
        threads = start([*polite, stubborn])
        time.sleep(1.0)
        termed_at = time.monotonic()
        os.kill(served.process.pid, signal.SIGTERM)
        for thread in threads[:2]:
            thread.join(10)
        time.sleep(1.0)  # half the drain period
        stubborn.stopping.set()
        threads[2].join(10)
        code = served.process.wait(30)
        exited_at = time.monotonic()

    for client in polite:
        assert client.errors == []
        assert client.not_ready_at is not None
        assert client.not_ready_at - termed_at < 1.0  # /readyz turned 503 at once
        assert client.answers
        assert all(status == 200 for _, status, _ in client.answers)
    assert stubborn.errors == []
    during_drain = [a for a in stubborn.answers if a[0] > termed_at + 0.2]
    assert during_drain, "nothing was served during the drain period"
    assert all(status == 200 and connection == "close" for _, status, connection in during_drain)
    assert exited_at - termed_at >= 2.0  # it served out DRAIN_S before stopping
    assert code == 0


def test_kill_hup_under_load_fails_no_request_and_loses_no_job(
    tmp_path: Path, redis_server: EmbeddedRedis
) -> None:
    prefix = f"hup-{uuid.uuid4()}:"
    env = {
        "REDIS_URL": redis_server.url,
        "WEB_CONCURRENCY": "2",
        "DRAIN_S": "1",
        "KEY_PREFIX": prefix,
    }
    with serve(env, tmp_path) as served:
        clients = [Client(served.url, asynchronous=i % 2 == 1) for i in range(16)]
        threads = start(clients)
        time.sleep(1.0)
        os.kill(served.process.pid, signal.SIGHUP)
        time.sleep(4.0)  # the old workers drain (1 s) and stop; the new ones serve
        for client in clients:
            client.stopping.set()
        for thread in threads:
            thread.join(10)
        answered = sum(len(c.answers) for c in clients)
        errors = [e for c in clients for e in c.errors]
        statuses = {status for c in clients for _, status, _ in c.answers}
        job_ids = [j for c in clients for j in c.job_ids]
        print(f"HUP under load: {answered} answers, {len(errors)} errors, {len(job_ids)} jobs")
        assert errors == []
        assert statuses <= {200, 202}
        finished = wait_finished(redis_server.url, prefix, job_ids, 30)
        assert finished == len(job_ids)  # 0 lost
        log = served.log.read_text(errors="replace")
    assert "Hang up" in log or "Handling signal: hup" in log  # the master did reload


def wait_finished(url: str, prefix: str, job_ids: list[str], timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    with redis.Redis.from_url(url) as client:
        while True:
            with client.pipeline(transaction=False) as pipe:
                for job_id in job_ids:
                    pipe.hget(f"{prefix}job:{job_id}", "status")
                statuses: list[bytes | None] = pipe.execute()
            done = sum(1 for status in statuses if status == b"succeeded")
            if done == len(job_ids) or time.monotonic() > deadline:
                return done
            time.sleep(0.2)
