"""`make bench-instructions` counts a real server's instructions under valgrind."""

from pathlib import Path

import pytest

from bench.instructions import count
from service.server.embedded_redis import EmbeddedRedis
from service.server.process import free_port
from tests.support.tools import require

pytestmark = [pytest.mark.served, pytest.mark.wrk, pytest.mark.valgrind]


def test_instructions_per_request_are_counted_for_a_served_build(tmp_path: Path) -> None:
    require("valgrind", "valgrind")
    require("wrk", "wrk")
    with EmbeddedRedis(tmp_path / "redis", port=free_port(), appendonly=False) as redis_server:
        measured = count("bound", redis_server.url, tmp_path, warm_up_s=1, measured_s=2)
    assert measured.requests > 0
    assert measured.per_request == measured.instructions / measured.requests
    # Parsing a request, running the app and writing the answer take tens of thousands of
    # instructions; a count far below that would mean the measured window missed the work.
    assert 20_000 < measured.per_request < 5_000_000
