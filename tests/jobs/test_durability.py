"""What a crash, a stall or a restart does to accepted jobs: real gunicorn processes, a real
redis-server or a real 3-primary Redis Cluster (each test that does not kill Redis itself runs on
both), real signals."""

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx2 as httpx
import psutil
import pytest
import redis

from service.server.embedded_redis import EmbeddedRedis
from service.server.process import ServerProcess, free_port, stop
from service.storage.keys import GROUP, Keys
from tests.support.load import final_bodies, submit_many
from tests.support.paths import ROOT
from tests.support.served import serve
from tests.support.topologies import pending, subscribers, total

pytestmark = [pytest.mark.served, pytest.mark.both_topologies]

QUEUE_ENV = {"CLAIM_IDLE_MS": "1000", "MAX_BATCH_SIZE": "8", "WORKER_BLOCK_MS": "200"}


def mock_latency(per_shard_ms: int, keys: Keys) -> str:
    """MOCK_LATENCY_MS for the same throughput per process on either topology: a process runs
    WORKER_CONCURRENCY consumers per shard, three times as many on the Cluster."""
    return str(per_shard_ms * len(keys.shards))


def worker_pids(served: ServerProcess) -> list[int]:
    return [child.pid for child in psutil.Process(served.process.pid).children()]


def consumers(client: redis.Redis, keys: Keys) -> list[dict[str, Any]]:
    """The consumers of every shard's stream that has a group."""
    found: list[dict[str, Any]] = []
    for shard in keys.shards:
        if client.exists(shard.stream) and client.xinfo_groups(shard.stream):
            found.extend(client.xinfo_consumers(shard.stream, GROUP))
    return found


def busy_worker(client: redis.Redis, keys: Keys, served: ServerProcess) -> int:
    """A worker process whose consumer has entries pending (names end in -pid-index)."""
    pids = set(worker_pids(served))
    for _ in range(200):
        for consumer in consumers(client, keys):
            pid = int(consumer["name"].decode().rsplit("-", 2)[1])
            if consumer["pending"] > 0 and pid in pids:
                return pid
        time.sleep(0.005)
    raise AssertionError("no consumer had jobs in flight")


def statuses(client: redis.Redis, keys: Keys, ids: list[str]) -> Counter[str]:
    with client.pipeline(transaction=False) as pipe:
        for prediction_id in ids:
            pipe.hget(keys.job(prediction_id), "status")
        return Counter((status or b"missing").decode() for status in pipe.execute())


def assert_all_succeeded_once(
    served: ServerProcess, client: redis.Redis, keys: Keys, ids: list[str]
) -> None:
    final = final_bodies(served.url, ids)
    assert len(final) == len(ids), f"{len(ids) - len(final)} accepted jobs never finished"
    assert {body["status"] for body in final.values()} == {"succeeded"}
    # Read again later: a result, once given, never changes (no job has two results).
    time.sleep(0.5)
    again = final_bodies(served.url, ids)
    assert {i: b["result"] for i, b in again.items()} == {i: b["result"] for i, b in final.items()}
    assert total(client, keys, "backlog") == 0
    assert pending(client, keys) == 0


def test_kill_9_of_a_worker_loses_no_job(
    tmp_path: Path, redis_url: str, redis_client: redis.Redis, keys: Keys
) -> None:
    with serve(
        {
            "REDIS_URL": redis_url,
            "WEB_CONCURRENCY": "2",
            "MOCK_LATENCY_MS": mock_latency(50, keys),
            **QUEUE_ENV,
        },
        tmp_path,
    ) as served:
        victims: list[int] = []

        def kill_midway(accepted: int) -> None:
            if accepted == 150:
                # The worker process whose consumer holds jobs in flight right now.
                victim = busy_worker(redis_client, keys, served)
                os.kill(victim, signal.SIGKILL)
                victims.append(victim)

        ids = submit_many(served.url, 400, on_accepted=kill_midway)
        assert len(ids) >= 300
        assert victims
        assert not psutil.pid_exists(victims[0]) or psutil.Process(victims[0]).status() == "zombie"
        assert_all_succeeded_once(served, redis_client, keys, ids)
        assert "event=reclaimed" in served.output()  # the kill did strand in-flight jobs


def test_a_stalled_worker_that_wakes_up_does_not_write_a_second_result(
    tmp_path: Path, redis_url: str, redis_client: redis.Redis, keys: Keys
) -> None:
    env = {
        "WEB_CONCURRENCY": "2",
        "MOCK_LATENCY_MS": "300",
        "CLAIM_IDLE_MS": "200",
        "MAX_BATCH_SIZE": "4",
        "MAX_BATCH_WAIT_MS": "0",
        "WORKER_BLOCK_MS": "100",
    }
    with serve({"REDIS_URL": redis_url, **env}, tmp_path) as served:
        ids = submit_many(served.url, 40)
        stalled = busy_worker(redis_client, keys, served)
        os.kill(stalled, signal.SIGSTOP)  # holds its batch; its heartbeat stops
        try:
            time.sleep(1.5)  # the other consumer reclaims the batch and finishes it
        finally:
            os.kill(stalled, signal.SIGCONT)
        assert_all_succeeded_once(served, redis_client, keys, ids)
        time.sleep(0.5)
        log = served.output()
        assert "event=reclaimed" in log
        assert "event=duplicate_completion" in log  # the stale batch finished and was dropped


def test_kill_9_of_redis_with_aof_always_loses_no_accepted_job(tmp_path: Path) -> None:
    """Single Redis only: it kills and restarts its own redis-server with AOF always. A
    Cluster's answer to a dead primary is a replica's failover, another test's subject (the
    session's Cluster has no AOF, and is shared by the tests that follow)."""
    keys = Keys("pred:")
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
                left = statuses(client, keys, ids)
                assert left["missing"] == 0, left  # every accepted job survived the crash
                assert left["queued"] + left["running"] > 0, left  # and some were unfinished
                assert_all_succeeded_once(served, client, keys, ids)
    finally:
        server.stop()


def test_sigterm_under_load_finishes_in_flight_jobs_and_leaves_the_rest_queued(
    tmp_path: Path, redis_url: str, redis_client: redis.Redis, keys: Keys
) -> None:
    env = {
        "REDIS_URL": redis_url,
        "WEB_CONCURRENCY": "2",
        "MOCK_LATENCY_MS": mock_latency(100, keys),
        **QUEUE_ENV,
    }
    with serve(env, tmp_path) as served:
        ids = submit_many(served.url, 300)
        assert len(ids) == 300
        assert stop(served.process) == 0
    left = statuses(redis_client, keys, ids)
    assert left["running"] == 0, left  # nothing abandoned mid-flight
    assert left["succeeded"] > 0, left
    assert left["queued"] > 0, left
    # A standalone worker (`python -m service worker`, as on another host) drains the rest.
    worker = subprocess.Popen(
        [sys.executable, "-m", "service", "worker"],
        cwd=ROOT,
        env={**os.environ, **env, "WORKER_CONCURRENCY": "2"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while statuses(redis_client, keys, ids)["succeeded"] < len(ids):
            assert time.monotonic() < deadline, statuses(redis_client, keys, ids)
            time.sleep(0.1)
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0
    assert total(redis_client, keys, "backlog") == 0


def test_long_poll_returns_promptly_and_waiters_share_one_subscription(
    tmp_path: Path, redis_url: str, redis_client: redis.Redis, keys: Keys
) -> None:
    """One process's waiters share one subscription: on a Cluster, one per shard (SSUBSCRIBE on
    the node that owns the shard's slot)."""
    env = {"WEB_CONCURRENCY": "1", "MOCK_LATENCY_MS": "1500", "MAX_BATCH_SIZE": "64"}
    with serve({"REDIS_URL": redis_url, **env}, tmp_path) as served:
        ids = submit_many(served.url, 50)

        async def long_poll_all() -> list[tuple[float, httpx.Response]]:
            async with httpx.AsyncClient(base_url=served.url, timeout=30) as http:

                async def one(prediction_id: str) -> tuple[float, httpx.Response]:
                    response = await http.get(f"/predict/{prediction_id}", params={"wait": 10})
                    return time.time(), response

                tasks = [asyncio.create_task(one(i)) for i in ids]
                await asyncio.sleep(0.5)  # all 50 are waiting now
                assert subscribers(redis_client) == len(keys.shards)
                return await asyncio.gather(*tasks)

        answered = asyncio.run(long_poll_all())
        lags = []
        for arrived, response in answered:
            assert response.status_code == 200
            lags.append(arrived - float(response.json()["finished_at"]))
        # A generous bound: the answer follows the completion by milliseconds, not by a poll
        # interval (the model takes 1.5 s, and the waits were 10 s).
        assert max(lags) < 0.5, lags
