"""Redis round trips against a real redis-server: one command at a time, a pipeline, concurrent
callers; the hiredis parser against the pure-Python one; the sync against the asyncio client.
Each round issues COMMANDS commands, so the groups compare per-command cost."""

import asyncio
from collections.abc import Iterator

import pytest
import redis
import redis.asyncio
from pytest_benchmark.fixture import BenchmarkFixture
from redis._parsers import _AsyncHiredisParser, _AsyncRESP2Parser, _HiredisParser, _RESP2Parser

COMMANDS = 100
KEY = "bench:job"


@pytest.fixture
def sync_client(redis_url: str) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(redis_url) as client:
        client.hset(KEY, mapping={"status": "succeeded", "result": "7206"})
        yield client


@pytest.mark.benchmark(group="sync client, 100 HGETALL")
@pytest.mark.parametrize("parser", [_HiredisParser, _RESP2Parser], ids=["hiredis", "python"])
def test_sync_one_at_a_time(benchmark: BenchmarkFixture, redis_url: str, parser: type) -> None:
    with redis.Redis.from_url(redis_url, parser_class=parser) as client:
        client.hset(KEY, mapping={"status": "succeeded"})

        def run() -> int:
            return sum(len(client.hgetall(KEY)) for _ in range(COMMANDS))

        assert benchmark(run) == COMMANDS


@pytest.mark.benchmark(group="sync client, 100 HGETALL")
def test_sync_pipeline(benchmark: BenchmarkFixture, sync_client: redis.Redis) -> None:
    def run() -> int:
        pipe = sync_client.pipeline(transaction=False)
        for _ in range(COMMANDS):
            pipe.hgetall(KEY)
        return len(pipe.execute())

    assert benchmark(run) == COMMANDS


@pytest.mark.benchmark(group="asyncio client, 100 HGETALL")
@pytest.mark.parametrize(
    "parser", [_AsyncHiredisParser, _AsyncRESP2Parser], ids=["hiredis", "python"]
)
@pytest.mark.parametrize("shape", ["one at a time", "concurrent", "pipeline"])
def test_asyncio(
    benchmark: BenchmarkFixture,
    loop: asyncio.AbstractEventLoop,
    redis_url: str,
    parser: type,
    shape: str,
) -> None:
    client = redis.asyncio.Redis.from_url(redis_url, parser_class=parser, max_connections=COMMANDS)

    async def one_at_a_time() -> int:
        return sum([len(await client.hgetall(KEY)) for _ in range(COMMANDS)])

    async def concurrent() -> int:
        replies = await asyncio.gather(*(client.hgetall(KEY) for _ in range(COMMANDS)))
        return sum(map(len, replies))

    async def pipeline() -> int:
        async with client.pipeline(transaction=False) as pipe:
            for _ in range(COMMANDS):
                pipe.hgetall(KEY)
            return sum(map(len, await pipe.execute()))

    run = {"one at a time": one_at_a_time, "concurrent": concurrent, "pipeline": pipeline}[shape]
    loop.run_until_complete(client.hset(KEY, mapping={"status": "succeeded"}))
    try:
        assert benchmark(lambda: loop.run_until_complete(run())) == COMMANDS
    finally:
        loop.run_until_complete(client.aclose())
