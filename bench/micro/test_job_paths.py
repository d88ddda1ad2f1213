"""The service's own Redis paths: submit (one Lua call: hash, TTL, stream entry) and poll
(HGETALL and decode)."""

import asyncio
from uuid import uuid4

import orjson
from pytest_benchmark.fixture import BenchmarkFixture
from redis.asyncio import Redis

from service.jobs.status import JobStatus
from service.jobs.store import Job, JobStore
from service.storage.keys import Keys

INPUT = orjson.dumps("some_input_data")


def test_submit(
    benchmark: BenchmarkFixture, loop: asyncio.AbstractEventLoop, redis_url: str
) -> None:
    redis = Redis.from_url(redis_url)
    store = JobStore(redis, Keys("bench:"), ttl_s=60)
    try:
        benchmark(lambda: loop.run_until_complete(store.submit(uuid4(), INPUT, enqueue=True)))
    finally:
        loop.run_until_complete(redis.aclose())


def test_poll(benchmark: BenchmarkFixture, loop: asyncio.AbstractEventLoop, redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    store = JobStore(redis, Keys("bench:"), ttl_s=60)
    job_id = uuid4()
    loop.run_until_complete(store.submit(job_id, INPUT, enqueue=False))
    loop.run_until_complete(store.finish(job_id, JobStatus.SUCCEEDED, result="7206"))
    try:
        job = benchmark(lambda: loop.run_until_complete(store.get(job_id)))
        assert isinstance(job, Job)
        assert job.result == "7206"
    finally:
        loop.run_until_complete(redis.aclose())
