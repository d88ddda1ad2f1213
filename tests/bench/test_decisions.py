"""The harness's decisions, on inputs made here: the knee, a saturated generator, the polling
strategies, the gate's verdict, the bars' verdicts and the fixed-rate load."""

from typing import Any

import pytest

from bench.bars import bars
from bench.figures import FIGURES
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


def ratios_of(tuned_vs: dict[str, float]) -> dict[str, dict[str, float]]:
    return {figure: {f"vs_{ref}": r for ref, r in tuned_vs.items()} for figure in FIGURES}


def test_bars_say_met_or_not_met_against_each_target() -> None:
    verdicts = {
        b["bar"]: b["verdict"] for b in bars({"ratios": ratios_of({"seed": 3.5, "bound": 0.8})})
    }
    assert verdicts["sync POST /predict throughput vs seed"] == "met"
    assert verdicts["sync POST /predict throughput vs bound"] == "met"
    assert verdicts["GET poll throughput vs bound"] == "NOT met"  # 0.8 < 1.0
    assert verdicts["async jobs/s finished vs bound"] == "reported"
    assert verdicts["2 workers on 2 cores: sync throughput scales (tuned)"] == "not measured"


def test_fixed_rate_and_scaling_bars_come_from_their_scenarios() -> None:
    def at(p99: float, achieved: float) -> dict[str, Any]:
        return {"p99_ms": p99, "achieved_rate": achieved}

    results = {
        "ratios": ratios_of({"seed": 1.0, "bound": 1.0}),
        "scaling": {"builds": {"tuned": {"factor": 0.9}, "seed": {"factor": 1.5}}},
        "fixed_rate": {"rate": 1000.0, "builds": {"tuned": at(4, 1000), "seed": at(900, 600)}},
    }
    scaling, fixed = bars(results)[-2:]
    assert scaling["verdict"] == "NOT met"
    assert "seed 1.50x" in scaling["measured"]
    assert fixed["verdict"] == "met"
    assert "seed answered only 600 rps" in fixed["measured"]


def test_fixed_rate_load_is_a_share_of_the_knee_or_of_the_best_rps_without_one() -> None:
    points = [{"connections": 1, "rps": 900.0, "p99_ms": 10.0},
              {"connections": 4, "rps": 1000.0, "p99_ms": 40.0}]  # fmt: skip
    with_knee = {"p99_target_ms": 25.0, "points": points, "knee": points[0]}
    assert knee_load(with_knee, "seed")[0] == pytest.approx(630)
    rate, basis = knee_load({**with_knee, "knee": None}, "seed")
    assert rate == pytest.approx(700)
    assert "no knee" in basis
