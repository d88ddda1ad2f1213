"""The harness's decisions, on inputs made here: the knee, a saturated generator, the polling
strategies, the gate's verdict, the bars' verdicts and the fixed-rate load."""

import pytest

from bench.bars import bars, instructions_bar, time_to_result_bars
from bench.figures import FIGURES
from bench.gate import check, load_floors
from bench.knee import find_knee
from bench.lineup import BuildName
from bench.load import generator_saturated
from bench.results import (
    BuildFigures,
    FixedRateLatency,
    InstructionCount,
    InstructionsRun,
    KneeShare,
    Ratio,
    Rounds,
    Scaling,
    Sweep,
    SweepPoint,
    TimeToResult,
    WorkerScaling,
)
from bench.run import knee_load, median_of, ratios, round_order
from bench.time_to_result import Strategy
from tests.support.bench_results import build_figures, fixed_rate_run, load_run, ratios_of


def test_knee_is_the_most_throughput_under_the_target() -> None:
    points = [SweepPoint(1, 900, 2), SweepPoint(4, 3000, 6), SweepPoint(16, 5000, 20),
              SweepPoint(64, 5200, 80)]  # fmt: skip
    assert find_knee(points, 25) == SweepPoint(16, 5000, 20)
    assert find_knee(points, 1) is None


@pytest.mark.parametrize(
    ("server", "generator", "saturated"),
    [(0.99, 0.99, False), (0.99, 0.5, False), (0.6, 0.99, True), (0.6, 0.7, False)],
)
def test_generator_is_saturated_when_it_uses_its_core_and_the_server_idles(
    server: float, generator: float, saturated: bool
) -> None:
    run = load_run(100, server_busy=server, generator_cpu=generator)
    assert generator_saturated(run) is saturated


def test_a_load_run_carries_its_rate_and_percentiles_from_its_counts() -> None:
    cdf = ((50.0, 1.0), (90.0, 2.0), (99.0, 3.0), (99.9, 4.0), (100.0, 5.0))
    run = load_run(250, cdf_ms=cdf)
    assert run.rps == 250
    assert (run.p50_ms, run.p90_ms, run.p99_ms, run.p999_ms) == (1.0, 2.0, 3.0, 4.0)
    assert run.percentile_ms(95) == 3.0  # the first point at or above it


def test_strategies_parse() -> None:
    assert Strategy.parse("poll:50ms").interval_s == pytest.approx(0.05)
    assert Strategy.parse("longpoll:2s").wait_s == 2
    assert Strategy.parse("longpoll:2s").kind == "long-poll"
    assert Strategy.parse("sse").kind == "sse"
    assert Strategy.parse("webhook").kind == "webhook"
    for wrong in ("push:1s", "sse:1s", "poll"):
        with pytest.raises(ValueError, match="unknown strategy"):
            Strategy.parse(wrong)


def test_gate_fails_a_figure_below_its_floor() -> None:
    ratios = {"sync rps": Ratio(1.4, 0.2), "poll rps": Ratio(0.9, 0.1)}
    verdict = check(ratios, {"sync rps": 1.2, "poll rps": 1.0})
    assert not verdict.passed
    assert [(row.figure, row.ok) for row in verdict.rows] == [
        ("sync rps", True),
        ("poll rps", False),
    ]


def test_the_committed_floors_name_every_figure_and_only_those() -> None:
    assert set(load_floors().ratio_to_seed_floor) == set(FIGURES)


def test_bars_say_met_or_not_met_against_each_target() -> None:
    verdicts = {b.name: b.verdict for b in bars(ratios_of(3.5, 0.8), None, None)}
    assert verdicts["sync POST /predict throughput vs seed"] == "met"
    assert verdicts["sync POST /predict throughput vs bound"] == "met"
    assert verdicts["GET poll throughput vs bound"] == "NOT met"  # 0.8 < 1.5
    assert verdicts["async jobs/s finished vs bound"] == "reported"
    assert verdicts["2 workers on 2 cores: sync throughput scales (tuned)"] == "not measured"


def test_fixed_rate_and_scaling_bars_come_from_their_scenarios() -> None:
    def scaled(factor: float) -> WorkerScaling:
        return WorkerScaling(load_run(1000), load_run(1000 * factor), factor)

    scaling = Scaling(64, "not pinned", {"tuned": scaled(0.9), "seed": scaled(1.5)})
    load = KneeShare(1000.0, "70% of the seed build's knee")
    fixed = FixedRateLatency(
        load,
        {"tuned": fixed_rate_run(4, 1000), "seed": fixed_rate_run(900, 600)},
        load,
        fixed_rate_run(4, 1000),
    )
    scaling_bar, fixed_bar = bars(ratios_of(1.0, 1.0), scaling, fixed)[-2:]
    assert scaling_bar.verdict == "NOT met"
    assert "seed 1.50x" in scaling_bar.measured
    assert fixed_bar.verdict == "met"
    assert "seed answered only 600 rps" in fixed_bar.measured


def test_fixed_rate_load_is_a_share_of_the_knee_or_of_the_best_rps_without_one() -> None:
    points = (SweepPoint(1, 900.0, 10.0), SweepPoint(4, 1000.0, 40.0))
    assert knee_load(Sweep(25.0, points, points[0]), "seed").rate == pytest.approx(630)
    without = knee_load(Sweep(25.0, points, None), "seed")
    assert without.rate == pytest.approx(700)
    assert "no knee" in without.basis


def _rounds(rps: list[float]) -> BuildFigures:
    """A build measured in len(rps) rounds, every figure of round i at rps[i]."""
    rounds = [build_figures(value) for value in rps]
    return BuildFigures(
        rounds[0].sync,
        rounds[0].async_jobs,
        rounds[0].poll,
        Rounds(
            tuple(r.sync for r in rounds),
            tuple(r.async_jobs for r in rounds),
            tuple(r.poll for r in rounds),
        ),
    )


def test_a_ratio_is_themedian_of_same_round_ratios_with_their_range() -> None:
    # Round 2 is slow for every build (a busy machine): its ratios are still 2x and 0.8x-ish.
    builds: dict[BuildName, BuildFigures] = {
        "tuned": _rounds([2000, 2200, 1000, 2100, 1900]),
        "seed": _rounds([1000, 1000, 500, 1000, 1000]),
        "bound": _rounds([2500, 2500, 1000, 3000, 2000]),
    }
    measured = ratios(builds)["sync rps"]
    assert measured.rounds == 5
    assert measured.vs_seed == pytest.approx(2.0)  # of 2.0, 2.2, 2.0, 2.1, 1.9
    assert measured.seed_range == pytest.approx((1.9, 2.2))
    assert measured.vs_bound == pytest.approx(0.88)  # of 0.8, 0.88, 1.0, 0.7, 0.95
    assert measured.bound_range == pytest.approx((0.7, 1.0))


def test_rounds_alternate_which_build_goes_first() -> None:
    assert round_order(0) == ("tuned", "seed", "bound")
    assert round_order(1) == ("bound", "seed", "tuned")
    assert round_order(2) == round_order(0)


def test_a_build_shows_its_median_round() -> None:
    assert median_of(_rounds([5, 1, 3, 4, 2]).rounds).sync.rps == 3
    assert median_of(_rounds([4, 1, 3, 2]).rounds).sync.rps == 2  # the lower middle


def _counts(tuned: float, bound: float) -> InstructionsRun:
    return InstructionsRun(
        {
            "tuned sync": InstructionCount.of(1000, round(tuned * 1000)),
            "bound sync": InstructionCount.of(1000, round(bound * 1000)),
        }
    )


def test_the_sync_instruction_bar_is_tuned_over_bound() -> None:
    assert instructions_bar(_counts(180_000, 160_000)).verdict == "met"  # 1.125x
    assert instructions_bar(_counts(190_000, 160_000)).verdict == "NOT met"  # 1.19x
    assert instructions_bar(None).verdict == "not measured"


def _times(strategy: str, p50: float, p99: float) -> tuple[TimeToResult, ...]:
    return (TimeToResult(strategy, 80, 80, True, p50, p50, p99, 1.0, 0.1),)


def test_long_poll_bars_are_the_model_latency_plus_a_margin() -> None:
    times: dict[BuildName, tuple[TimeToResult, ...] | None] = {
        "tuned": _times("long-poll wait=2s", 52.9, 58.1)
    }
    p50, p99, short = time_to_result_bars(times, 50.0)
    assert (p50.verdict, p99.verdict) == ("met", "NOT met")
    assert short.verdict == "not measured"


def test_short_polls_are_held_to_the_bound_at_p50_and_p99() -> None:
    def verdict(tuned: tuple[float, float], bound: tuple[float, float]) -> str:
        times: dict[BuildName, tuple[TimeToResult, ...] | None] = {
            "tuned": _times("poll every 10ms", *tuned),
            "bound": _times("poll every 10ms", *bound),
        }
        return time_to_result_bars(times, 50.0)[-1].verdict

    assert verdict((55.0, 60.0), (55.5, 60.0)) == "met"
    assert verdict((55.0, 61.0), (55.5, 60.0)) == "NOT met"
    assert verdict((56.0, 59.0), (55.5, 60.0)) == "NOT met"
