"""The harness's decisions, on inputs made here: the knee, a saturated generator, the polling
strategies, the gate's verdict and the fixed-rate load."""

import pytest

from bench.gate import check
from bench.knee import SweepPoint, find_knee
from bench.load import LoadResult
from bench.run import knee_load
from bench.time_to_result import Strategy


def test_knee_is_the_most_throughput_under_the_target() -> None:
    points = [SweepPoint(1, 900, 2), SweepPoint(4, 3000, 6), SweepPoint(16, 5000, 20),
              SweepPoint(64, 5200, 80)]  # fmt: skip
    assert find_knee(points, 25) == SweepPoint(16, 5000, 20)
    assert find_knee(points, 1) is None


def load(server_busy: float, generator_cpu: float) -> LoadResult:
    cdf = [(50.0, 1.0), (100.0, 2.0)]
    return LoadResult("sync", 32, 1.0, 100, {}, cdf, server_busy, 1.0, generator_cpu)


@pytest.mark.parametrize(
    ("server", "generator", "saturated"),
    [(0.99, 0.99, False), (0.99, 0.5, False), (0.6, 0.99, True), (0.6, 0.7, False)],
)
def test_generator_is_saturated_when_it_uses_its_core_and_the_server_idles(
    server: float, generator: float, saturated: bool
) -> None:
    assert load(server, generator).generator_saturated is saturated


def test_strategies_parse() -> None:
    assert Strategy.parse("poll:50ms").interval_s == pytest.approx(0.05)
    assert Strategy.parse("longpoll:2s").wait_s == 2
    with pytest.raises(ValueError, match="unknown polling strategy"):
        Strategy.parse("push:1s")


def test_gate_fails_a_figure_below_its_floor() -> None:
    ratios = {
        "sync rps": {"vs_seed": 1.4, "vs_bound": 0.2},
        "poll rps": {"vs_seed": 0.9, "vs_bound": 0.1},
    }
    verdict = check(ratios, {"ratio_to_seed_floor": {"sync rps": 1.2, "poll rps": 1.0}})
    assert not verdict["passed"]
    assert [row["ok"] for row in verdict["rows"]] == [True, False]


def test_fixed_rate_load_is_a_share_of_the_knee_or_of_the_best_rps_without_one() -> None:
    points = [{"connections": 1, "rps": 900.0, "p99_ms": 10.0},
              {"connections": 4, "rps": 1000.0, "p99_ms": 40.0}]  # fmt: skip
    with_knee = {"p99_target_ms": 25.0, "points": points, "knee": points[0]}
    assert knee_load(with_knee, "seed")[0] == pytest.approx(630)
    rate, basis = knee_load({**with_knee, "knee": None}, "seed")
    assert rate == pytest.approx(700)
    assert "no knee" in basis
