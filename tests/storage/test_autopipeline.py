"""The auto-pipeliner against a real redis-server: order of replies, errors, a dropped
connection, cancelled callers, and how many writes and server reads a burst costs."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from service.server.embedded_redis import EmbeddedRedis
from service.server.process import free_port
from service.storage.autopipeline import AutoPipelinedRedis

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def client_for(url: str) -> AutoPipelinedRedis:
    return AutoPipelinedRedis.over(aioredis.ConnectionPool.from_url(url, socket_timeout=5))


# Keeps the server busy for ARGV[1] seconds: a stand-in for a slow command, on any Redis
# (DEBUG SLEEP is disabled by default from Redis 7).
_STALL = """
local start = redis.call('TIME')
local until_us = start[1] * 1e6 + start[2] + ARGV[1] * 1e6
repeat
  local now = redis.call('TIME')
until now[1] * 1e6 + now[2] >= until_us
return 1
"""


def stall(client: AutoPipelinedRedis, seconds: float) -> "asyncio.Future[Any]":
    return asyncio.ensure_future(client.eval(_STALL, 0, seconds))


async def server_reads(admin: aioredis.Redis) -> int:
    """Read events the server has processed (Redis 6+), the INFO call's own included."""
    stats = await admin.info("stats")
    return int(stats["total_reads_processed"])


@pytest.fixture
async def pipelined(redis_url: str) -> AsyncIterator[AutoPipelinedRedis]:
    client = client_for(redis_url)
    await client.ping()  # connected, so that every test starts from a warm connection
    yield client
    await client.aclose()


@pytest.fixture
async def admin(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def test_each_caller_gets_its_own_reply_in_order(pipelined: AutoPipelinedRedis) -> None:
    echoes = await asyncio.gather(*(pipelined.echo(f"caller-{i}") for i in range(500)))
    assert echoes == [f"caller-{i}".encode() for i in range(500)]
    # Replies of one write come back in the order the commands were issued.
    counts = await asyncio.gather(*(pipelined.incr("counter") for _ in range(200)))
    assert counts == list(range(1, 201))


async def test_replies_are_parsed_per_command(pipelined: AutoPipelinedRedis) -> None:
    await pipelined.hset("h", mapping={"a": "1", "b": "2"})
    fields, missing, length = await asyncio.gather(
        pipelined.hgetall("h"), pipelined.hgetall("nothing"), pipelined.hlen("h")
    )
    assert fields == {b"a": b"1", b"b": b"2"}
    assert missing == {}
    assert length == 2


async def test_an_error_reaches_only_the_caller_whose_command_failed(
    pipelined: AutoPipelinedRedis,
) -> None:
    await pipelined.set("text", "not a number")
    before, failed, after = await asyncio.gather(
        pipelined.set("a", "1"), pipelined.incr("text"), pipelined.get("a"), return_exceptions=True
    )
    assert before is True
    assert isinstance(failed, ResponseError)
    assert after == b"1"


async def test_arguments_of_every_type_are_packed(pipelined: AutoPipelinedRedis) -> None:
    # hiredis packs str, bytes, int and float; the rest falls back to redis-py's packer.
    await asyncio.gather(
        pipelined.set("s", "text"),
        pipelined.set("b", b"\x00bytes"),
        pipelined.set("i", 7),
        pipelined.set("f", 2.5),
        pipelined.set("a", bytearray(b"array")),
        pipelined.set("m", memoryview(b"view")),
    )
    assert await pipelined.mget("s", "b", "i", "f", "a", "m") == [
        b"text",
        b"\x00bytes",
        b"7",
        b"2.5",
        b"array",
        b"view",
    ]


async def test_scripts_load_themselves_through_the_pipeline(pipelined: AutoPipelinedRedis) -> None:
    script = pipelined.register_script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
    await pipelined.script_flush()
    results = await asyncio.gather(*(script(keys=["s"], args=[2]) for _ in range(10)))
    assert sorted(results) == list(range(2, 21, 2))


async def test_a_burst_is_one_write_and_one_server_read(
    pipelined: AutoPipelinedRedis, admin: aioredis.Redis
) -> None:
    before_writes = pipelined.autopipeline.stats.writes
    before_reads = await server_reads(admin)
    await asyncio.gather(*(pipelined.hget(f"job:{i}", "status") for i in range(100)))
    after_reads = await server_reads(admin)
    assert pipelined.autopipeline.stats.writes - before_writes == 1
    # One read event for the 100 commands, one for the INFO that counted it.
    assert after_reads - before_reads == 2


async def test_without_the_pipeline_the_same_burst_costs_a_read_per_command(
    redis_url: str, admin: aioredis.Redis
) -> None:
    plain = aioredis.Redis.from_url(redis_url)
    await asyncio.gather(*(plain.ping() for _ in range(10)))  # open the pool's connections
    before = await server_reads(admin)
    await asyncio.gather(*(plain.hget(f"job:{i}", "status") for i in range(100)))
    assert await server_reads(admin) - before >= 100
    await plain.aclose()


async def test_a_cancelled_caller_does_not_shift_the_replies(
    pipelined: AutoPipelinedRedis,
) -> None:
    await pipelined.mset({"x": "X", "y": "Y"})
    slow = stall(pipelined, 0.2)
    waiting = asyncio.ensure_future(pipelined.get("x"))
    await asyncio.sleep(0.05)  # both are written; the server is asleep
    waiting.cancel()
    later = await pipelined.get("y")
    assert later == b"Y"
    assert await slow
    assert waiting.cancelled()


async def test_a_dropped_connection_fails_the_batch_and_the_next_command_reconnects(
    tmp_path: Path,
) -> None:
    port = free_port()
    server = EmbeddedRedis(tmp_path / "a", port=port, appendonly=False)
    server.start()
    client = client_for(server.url)
    try:
        await client.set("k", "v")
        in_flight = [
            stall(client, 1),
            *(asyncio.ensure_future(client.get("k")) for _ in range(20)),
        ]
        await asyncio.sleep(0.1)
        server.kill()  # mid-batch: the server dies while the batch waits for its replies
        results = await asyncio.gather(*in_flight, return_exceptions=True)
        assert all(isinstance(r, RedisConnectionError) for r in results), results
        with pytest.raises(RedisConnectionError):
            await client.get("k")  # nobody listens now: a clean error, not a hang
        server = EmbeddedRedis(tmp_path / "b", port=port, appendonly=False)
        server.start()
        assert await client.set("k", "again") is True
        assert await client.get("k") == b"again"
    finally:
        await client.aclose()
        server.stop()
