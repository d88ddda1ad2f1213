"""What a crash, a stall or a restart does to accepted jobs: real gunicorn processes, a real
redis-server, real signals."""

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx2 as httpx
import psutil
import pytest
import redis

from service.server.embedded_redis import EmbeddedRedis
from service.server.process import ServerProcess, free_port, stop
from tests.support.load import final_bodies, submit_many
from tests.support.paths import ROOT
from tests.support.served import serve

pytestmark = pytest.mark.served

QUEUE_ENV = {"CLAIM_IDLE_MS": "1000", "MAX_BATCH_SIZE": "8", "WORKER_BLOCK_MS": "200"}


def worker_pids(served: ServerProcess) -> list[int]:
    return [child.pid for child in psutil.Process(served.process.pid).children()]


def busy_worker(client: redis.Redis, served: ServerProcess) -> int:
    """A worker process whose consumer has entries pending (names end in -pid-index)."""
    pids = set(worker_pids(served))
    for _ in range(200):
        for consumer in client.xinfo_consumers("pred:stream", "workers"):
            pid = int(consumer["name"].decode().rsplit("-", 2)[1])
            if consumer["pending"] > 0 and pid in pids:
                return pid
        time.sleep(0.005)
    raise AssertionError("no consumer had jobs in flight")


def statuses(client: redis.Redis, ids: list[str]) -> Counter[str]:
    with client.pipeline(transaction=False) as pipe:
        for prediction_id in ids:
            pipe.hget(f"pred:job:{prediction_id}", "status")
        return Counter((status or b"missing").decode() for status in pipe.execute())


def assert_all_succeeded_once(served: ServerProcess, client: redis.Redis, ids: list[str]) -> None:
    final = final_bodies(served.url, ids)
    assert len(final) == len(ids), f"{len(ids) - len(final)} accepted jobs never finished"
    assert {body["status"] for body in final.values()} == {"succeeded"}
    # Read again later: a result, once given, never changes (no job has two results).
    time.sleep(0.5)
    again = final_bodies(served.url, ids)
    assert {i: b["result"] for i, b in again.items()} == {i: b["result"] for i, b in final.items()}
    assert client.get("pred:backlog") == b"0"
    assert client.xpending("pred:stream", "workers")["pending"] == 0


def test_kill_9_of_a_worker_loses_no_job(tmp_path: Path) -> None:
    with (
        EmbeddedRedis(tmp_path / "redis", port=free_port(), appendonly=False) as server,
        redis.Redis.from_url(server.url) as client,
        serve(
            {"REDIS_URL": server.url, "WEB_CONCURRENCY": "2", "MOCK_LATENCY_MS": "50", **QUEUE_ENV},
            tmp_path,
        ) as served,
    ):
        victims: list[int] = []

        def kill_midway(accepted: int) -> None:
            if accepted == 150:
                # The worker process whose consumer holds jobs in flight right now.
                victim = busy_worker(client, served)
                os.kill(victim, signal.SIGKILL)
                victims.append(victim)

        ids = submit_many(served.url, 400, on_accepted=kill_midway)
        assert len(ids) >= 300
        assert victims
        assert not psutil.pid_exists(victims[0]) or psutil.Process(victims[0]).status() == "zombie"
        assert_all_succeeded_once(served, client, ids)
        assert "event=reclaimed" in served.output()  # the kill did strand in-flight jobs


def test_a_stalled_worker_that_wakes_up_does_not_write_a_second_result(tmp_path: Path) -> None:
    env = {
        "WEB_CONCURRENCY": "2",
        "MOCK_LATENCY_MS": "300",
        "CLAIM_IDLE_MS": "200",
        "MAX_BATCH_SIZE": "4",
        "MAX_BATCH_WAIT_MS": "0",
        "WORKER_BLOCK_MS": "100",
    }
    with (
        EmbeddedRedis(tmp_path / "redis", port=free_port(), appendonly=False) as server,
        redis.Redis.from_url(server.url) as client,
        serve({"REDIS_URL": server.url, **env}, tmp_path) as served,
    ):
        ids = submit_many(served.url, 40)
        stalled = busy_worker(client, served)
        os.kill(stalled, signal.SIGSTOP)  # holds its batch; its heartbeat stops
        try:
            time.sleep(1.5)  # the other consumer reclaims the batch and finishes it
        finally:
            os.kill(stalled, signal.SIGCONT)
        assert_all_succeeded_once(served, client, ids)
        time.sleep(0.5)
        log = served.output()
        assert "event=reclaimed" in log
        assert "event=duplicate_completion" in log  # the stale batch finished and was dropped


def test_kill_9_of_redis_with_aof_always_loses_no_accepted_job(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "redis"
    server = EmbeddedRedis(data, port=port, appendfsync="always")
    server.start()
    env = {
        "REDIS_URL": server.url,
        "WEB_CONCURRENCY": "2",
        "MOCK_LATENCY_MS": "200",
        "MAX_BATCH_SIZE": "4",
        "REDIS_SOCKET_TIMEOUT_S": "1",
        **{k: v for k, v in QUEUE_ENV.items() if k != "MAX_BATCH_SIZE"},
    }
    try:
        with serve(env, tmp_path) as served:
            ids = submit_many(served.url, 200)
            assert len(ids) == 200
            server.kill()
            # The outage: answers are quick 503s, never a hang.
            started = time.monotonic()
            refused = httpx.post(
                f"{served.url}/predict",
                json={"input": "x"},
                headers={"async_mode": "true"},
                timeout=30,
            )
            assert refused.status_code == 503
            assert time.monotonic() - started < 10
            assert httpx.get(f"{served.url}/readyz", timeout=30).status_code == 503
            assert httpx.get(f"{served.url}/predict/{ids[0]}", timeout=30).status_code == 503
            server = EmbeddedRedis(data, port=port, appendfsync="always")
            server.start()
            with redis.Redis.from_url(server.url) as client:
                left = statuses(client, ids)
                assert left["missing"] == 0, left  # every accepted job survived the crash
                assert left["queued"] + left["running"] > 0, left  # and some were unfinished
                assert_all_succeeded_once(served, client, ids)
    finally:
        server.stop()


def test_sigterm_under_load_finishes_in_flight_jobs_and_leaves_the_rest_queued(
    tmp_path: Path,
) -> None:
    env = {"WEB_CONCURRENCY": "2", "MOCK_LATENCY_MS": "100", **QUEUE_ENV}
    with (
        EmbeddedRedis(tmp_path / "redis", port=free_port(), appendonly=False) as server,
        redis.Redis.from_url(server.url) as client,
    ):
        with serve({"REDIS_URL": server.url, **env}, tmp_path) as served:
            ids = submit_many(served.url, 300)
            assert len(ids) == 300
            assert stop(served.process) == 0
        left = statuses(client, ids)
        assert left["running"] == 0, left  # nothing abandoned mid-flight
        assert left["succeeded"] > 0, left
        assert left["queued"] > 0, left
        # A standalone worker (`python -m service worker`, as on another host) drains the rest.
        worker = subprocess.Popen(
            [sys.executable, "-m", "service", "worker"],
            cwd=ROOT,
            env={**os.environ, "REDIS_URL": server.url, **env, "WORKER_CONCURRENCY": "2"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 60
            while statuses(client, ids)["succeeded"] < len(ids):
                assert time.monotonic() < deadline, statuses(client, ids)
                time.sleep(0.1)
        finally:
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(30) == 0
        assert client.get("pred:backlog") == b"0"


def test_long_poll_returns_promptly_and_waiters_share_one_subscription(tmp_path: Path) -> None:
    env = {"WEB_CONCURRENCY": "1", "MOCK_LATENCY_MS": "1500", "MAX_BATCH_SIZE": "64"}
    with (
        EmbeddedRedis(tmp_path / "redis", port=free_port(), appendonly=False) as server,
        redis.Redis.from_url(server.url) as client,
        serve({"REDIS_URL": server.url, **env}, tmp_path) as served,
    ):
        ids = submit_many(served.url, 50)
        import asyncio

        async def long_poll_all() -> list[tuple[float, httpx.Response]]:
            async with httpx.AsyncClient(base_url=served.url, timeout=30) as http:

                async def one(prediction_id: str) -> tuple[float, httpx.Response]:
                    response = await http.get(f"/predict/{prediction_id}", params={"wait": 10})
                    return time.time(), response

                tasks = [asyncio.create_task(one(i)) for i in ids]
                await asyncio.sleep(0.5)  # all 50 are waiting now
                subscribers = [c for c in client.client_list() if int(c.get("sub", 0)) > 0]
                assert len(subscribers) == 1
                return await asyncio.gather(*tasks)

        answered = asyncio.run(long_poll_all())
        lags = []
        for arrived, response in answered:
            assert response.status_code == 200
            lags.append(arrived - float(response.json()["finished_at"]))
        # A generous bound: the answer follows the completion by milliseconds, not by a poll
        # interval (the model takes 1.5 s, and the waits were 10 s).
        assert max(lags) < 0.5, lags
