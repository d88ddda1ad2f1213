"""One measurement each, against one started build: wrk for throughput, the job hashes in Redis
for completions, sequential requests for Redis work per request, the open-loop clients for
latency at a fixed rate and for time to result."""

import time
from collections.abc import Collection
from pathlib import Path

import httpx2 as httpx
import redis
import uvloop

from bench.apps.contract import JOB_KEY_PREFIX
from bench.knee import find_knee
from bench.load import run_wrk
from bench.open_loop import measure as measure_fixed_rate
from bench.placement import Placement
from bench.redis_counts import RedisCounter
from bench.results import (
    AsyncRun,
    FixedRateRun,
    LoadRun,
    RedisWorkCounts,
    Sweep,
    SweepPoint,
)
from bench.time_to_result import Sample, Strategy, jobs_of, sample

MOCK_BODY = '{"input": "some_input_data"}'
IRIS_BODY = '{"input": [6.7, 3.0, 5.2, 2.3]}'
# Polls of this many distinct finished jobs, so that the poll figure is not one hot key.
POLL_IDS = 20_000
FINISH_TIMEOUT_S = 60.0


def sync_load(
    url: str, placement: Placement, connections: int, duration_s: float, body: str = MOCK_BODY
) -> LoadRun:
    return run_wrk(
        url,
        "sync",
        script="post.lua",
        connections=connections,
        duration_s=duration_s,
        placement=placement,
        env={"BENCH_BODY": body},
    )


def _job_times(client: redis.Redis) -> list[tuple[float, float | None]]:
    """(created_at, finished_at) of every job hash in Redis."""
    times: list[tuple[float, float | None]] = []
    keys = list(client.scan_iter(match=f"{JOB_KEY_PREFIX}*", count=5000))
    for start in range(0, len(keys), 5000):
        pipe = client.pipeline(transaction=False)
        for key in keys[start : start + 5000]:
            pipe.hmget(key, "created_at", "finished_at")
        for created, finished in pipe.execute():
            times.append((float(created), float(finished) if finished is not None else None))
    return times


def async_load(
    url: str, placement: Placement, redis_url: str, connections: int, duration_s: float
) -> AsyncRun:
    """Jobs submitted per second (wrk) and finished per second (from the job hashes' clocks)."""
    with redis.Redis.from_url(redis_url) as client:
        client.flushall()  # our own Redis, started by the harness
        started_at = time.time()
        load = run_wrk(
            url,
            "async",
            script="post.lua",
            connections=connections,
            duration_s=duration_s,
            placement=placement,
            env={"BENCH_BODY": MOCK_BODY, "BENCH_ASYNC": "true"},
        )
        deadline = time.monotonic() + FINISH_TIMEOUT_S
        while True:
            times = _job_times(client)
            unfinished = sum(1 for _, finished in times if finished is None)
            if not unfinished or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finished = [f for _, f in times if f is not None]
    last = max(finished, default=started_at)
    return AsyncRun(
        submits=load,
        jobs=len(times),
        finished=len(finished),
        finished_per_s=len(finished) / (last - started_at) if finished else 0.0,
    )


def finished_ids(redis_url: str, ids_file: Path) -> int:
    with redis.Redis.from_url(redis_url) as client:
        ids = [
            key.decode().removeprefix(JOB_KEY_PREFIX)
            for _, key in zip(
                range(POLL_IDS),
                client.scan_iter(match=f"{JOB_KEY_PREFIX}*", count=5000),
                strict=False,
            )
        ]
    ids_file.write_text("\n".join(ids) + "\n")
    return len(ids)


def poll_load(
    url: str, placement: Placement, ids_file: Path, connections: int, duration_s: float
) -> LoadRun:
    return run_wrk(
        url,
        "poll",
        script="poll.lua",
        connections=connections,
        duration_s=duration_s,
        placement=placement,
        env={"BENCH_IDS_FILE": str(ids_file)},
    )


def sweep(
    url: str, placement: Placement, levels: tuple[int, ...], duration_s: float, target_ms: float
) -> Sweep:
    points = []
    for connections in levels:
        load = sync_load(url, placement, connections, duration_s)
        points.append(SweepPoint(connections, load.rps, load.p99_ms))
    return Sweep(target_ms, tuple(points), find_knee(points, target_ms))


def fixed_rate(url: str, rate: float, duration_s: float, connections: int) -> FixedRateRun:
    """Sync POST /predict latency at `rate` requests/s, open loop (bench/open_loop.py)."""
    result = uvloop.run(
        measure_fixed_rate(
            url,
            rate_per_s=rate,
            duration_s=duration_s,
            body=MOCK_BODY.encode(),
            max_connections=connections,
        )
    )
    return result.summary()


def redis_work(url: str, redis_url: str, settle_s: float, requests: int = 20) -> RedisWorkCounts:
    """Redis round trips and commands per request, each endpoint on its own, sequentially.

    The build must run with a model slow enough (MOCK_LATENCY_MS) that no async job finishes
    during the submit count: that count is the request's own cost. The completions the async
    backend writes later are counted apart, after `settle_s`.
    """
    counter = RedisCounter(redis_url)
    headers = {"Content-Type": "application/json"}
    async_headers = {**headers, "async_mode": "true"}
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            client.post("/predict", content=MOCK_BODY, headers=headers)  # connections warm
            client.post("/predict", content=MOCK_BODY, headers=async_headers)
            time.sleep(settle_s)
            counter.start()
            for _ in range(requests):
                client.post("/predict", content=MOCK_BODY, headers=headers)
            sync = counter.delta()
            counter.start()
            locations = [
                client.post("/predict", content=MOCK_BODY, headers=async_headers).headers[
                    "location"
                ]
                for _ in range(requests)
            ]
            submit = counter.delta()
            counter.start()
            time.sleep(settle_s)
            completion = counter.delta()
            counter.start()
            statuses = [client.get(location).status_code for location in locations]
            poll = counter.delta()
    finally:
        counter.close()
    if set(statuses) != {200}:
        raise RuntimeError(f"jobs not finished {settle_s}s after submit: {statuses}")
    return RedisWorkCounts(
        requests=requests,
        sync=sync.per(requests),
        submit=submit.per(requests),
        completion=completion.per(requests),
        poll=poll.per(requests),
    )


def time_to_result(
    url: str,
    strategies: tuple[str, ...],
    rate: float,
    duration_s: float,
    unsupported: Collection[str] = (),
) -> tuple[Sample, ...]:
    """One round of every polling strategy against one build (bench/time_to_result.py); those
    named in `unsupported` (the build did not offer them in an earlier round) are not run."""
    return tuple(
        Sample.unsupported(strategy, jobs_of(rate, duration_s))
        if strategy.name in unsupported
        else uvloop.run(sample(url, strategy, rate_per_s=rate, duration_s=duration_s))
        for strategy in map(Strategy.parse, strategies)
    )
