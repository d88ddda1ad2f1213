"""Micro-benchmarks run against a real redis-server of their own, on a free port."""

import asyncio
from collections.abc import Iterator

import pytest
import redis
import uvloop

from service.server.embedded_redis import EmbeddedRedis
from service.server.process import free_port


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), port=free_port(), appendonly=False)
    with server:
        yield server


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> str:
    """The session's Redis, emptied: it is the one started above, so flushing it is safe."""
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushall()
    return redis_server.url


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """One uvloop loop per benchmark, as the service runs on; rounds reuse it."""
    event_loop = uvloop.new_event_loop()
    yield event_loop
    event_loop.close()
