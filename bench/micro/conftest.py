"""Micro-benchmarks share the test suite's real redis-server (started on a free port)."""

import asyncio
from collections.abc import Iterator

import pytest

from tests.conftest import redis_server, redis_url

__all__ = ["redis_server", "redis_url"]


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """One uvloop loop per benchmark, as the service runs on; rounds reuse it."""
    import uvloop

    event_loop = uvloop.new_event_loop()
    yield event_loop
    event_loop.close()
