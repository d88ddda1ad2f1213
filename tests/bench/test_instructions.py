"""`make bench-instructions` and the gate count a real server's and a real consumer's
instructions under valgrind, and the gate compares them with committed baselines."""

from pathlib import Path

import pytest

from bench.instructions import count_finish, count_http
from service.server.embedded_redis import EmbeddedRedis
from service.server.process import free_port
from tests.support.tools import require

pytestmark = [pytest.mark.served, pytest.mark.wrk, pytest.mark.valgrind]


def test_instructions_per_request_are_counted_for_a_served_build(tmp_path: Path) -> None:
    require("valgrind", "valgrind")
    require("wrk", "wrk")
    with EmbeddedRedis(tmp_path / "redis", port=free_port(), appendonly=False) as redis_server:
        measured = count_http("tuned", "poll", redis_server.url, tmp_path, 1, 2)
    assert measured.units > 0
    assert measured.per_unit == measured.instructions / measured.units
    # Parsing a request, reading Redis and writing the answer take tens of thousands of
    # instructions; a count far below that would mean the measured window missed the work.
    assert 20_000 < measured.per_unit < 5_000_000


def test_a_consumers_work_per_job_is_counted(tmp_path: Path) -> None:
    require("valgrind", "valgrind")
    with EmbeddedRedis(tmp_path / "redis", port=free_port(), appendonly=False) as redis_server:
        measured = count_finish(redis_server.url, tmp_path, jobs=128)
    assert measured.units == 128
    assert 10_000 < measured.per_unit < 5_000_000
