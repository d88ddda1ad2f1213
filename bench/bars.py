"""The bars the tuned build is held to, each with what this run measured and whether it met it.

Throughput bars are on the median of the same-round ratios to the seed and bound references
(each round measures every build back to back), with the range of those ratios beside it; the
sync bar is backed by instructions per request, which do not swing with the machine. The
instruction, time-to-result, scaling and fixed-rate latency bars come from `make bench`'s own
scenarios and are "not measured" in a gate run.
"""

from collections.abc import Mapping

from bench.lineup import BuildName, Reference
from bench.results import (
    Bar,
    FixedRateLatency,
    InstructionsRun,
    Ratio,
    Scaling,
    TimeToResult,
    Verdict,
)

# (figure in figures.FIGURES, reference, least ratio; None: reported, no target)
RATIO_BARS: tuple[tuple[str, str, Reference, float | None], ...] = (
    ("sync POST /predict throughput", "sync rps", "seed", 3.0),
    ("sync POST /predict throughput", "sync rps", "bound", 0.8),
    ("GET poll throughput", "poll rps", "seed", 3.0),
    ("GET poll throughput", "poll rps", "bound", 1.5),
    ("async jobs/s submitted", "async jobs/s submitted", "seed", 2.0),
    ("async jobs/s finished", "async jobs/s finished", "seed", 5.0),
    ("async jobs/s submitted", "async jobs/s submitted", "bound", None),
    ("async jobs/s finished", "async jobs/s finished", "bound", None),
)
# Instructions per sync request, tuned over bound: at most this.
SYNC_INSTRUCTIONS_OVER_BOUND = 1.15
# Time to result at a light load (BENCH_TTR_*), the model's latency plus at most this much.
LONG_POLL_P50_OVER_MODEL_MS = 3.0
LONG_POLL_P99_OVER_MODEL_MS = 8.0
LONG_POLL = "long-poll"  # the strategy names bench/time_to_result.py gives
SHORT_POLLS = "poll every 10ms"
# A build that answered less than this share of the fixed rate could not carry it: said so.
FELL_BEHIND = 0.95
NOT_MEASURED = "not measured in this run (make bench measures it)"


def _bar(name: str, target: str, measured: str, met: bool | None) -> Bar:
    verdict: Verdict = "reported" if met is None else "met" if met else "NOT met"
    return Bar(name, target, measured, verdict)


def _not_measured(name: str, target: str) -> Bar:
    return Bar(name, target, NOT_MEASURED, "not measured")


def ratio_bars(ratios: dict[str, Ratio]) -> list[Bar]:
    rows = []
    for name, figure, ref, least in RATIO_BARS:
        measured = ratios[figure]
        ratio = measured.vs(ref)
        low, high = measured.range_vs(ref)
        spread = (
            f" (median of {measured.rounds} rounds; range {low:.2f}-{high:.2f}x)"
            if measured.rounds > 1
            else ""
        )
        target = f">= {least:g}x {ref}" if least is not None else "report it"
        met = None if least is None else ratio >= least
        rows.append(_bar(f"{name} vs {ref}", target, f"{ratio:.2f}x {ref}{spread}", met))
    return rows


def instructions_bar(instructions: InstructionsRun | None) -> Bar:
    name = "sync POST /predict instructions per request (callgrind)"
    target = f"<= {SYNC_INSTRUCTIONS_OVER_BOUND:g}x bound"
    counts = instructions.counts if instructions is not None else {}
    tuned, bound = counts.get("tuned sync"), counts.get("bound sync")
    if tuned is None or bound is None:
        return _not_measured(name, target)
    ratio = tuned.per_unit / bound.per_unit
    measured = f"tuned {tuned.per_unit:,.0f}, bound {bound.per_unit:,.0f}: {ratio:.3f}x"
    return _bar(name, target, measured, ratio <= SYNC_INSTRUCTIONS_OVER_BOUND)


def _strategy(
    times: Mapping[BuildName, tuple[TimeToResult, ...] | None], build: BuildName, prefix: str
) -> TimeToResult | None:
    return next((t for t in times.get(build) or () if t.strategy.startswith(prefix)), None)


def time_to_result_bars(
    times: Mapping[BuildName, tuple[TimeToResult, ...] | None] | None, model_ms: float
) -> list[Bar]:
    """Long-poll against the model's own latency; 10 ms short polls against the bound's."""
    p50_name = "async time to result, long-poll, p50"
    p99_name = "async time to result, long-poll, p99"
    p50_target = f"<= model + {LONG_POLL_P50_OVER_MODEL_MS:g} ms"
    p99_target = f"<= model + {LONG_POLL_P99_OVER_MODEL_MS:g} ms"
    short_name = "async time to result, polls every 10 ms, p50 and p99"
    short_target = "tuned <= bound at p50 and at p99"
    times = times or {}
    rows = []
    long_poll = _strategy(times, "tuned", LONG_POLL)
    if long_poll is None:
        rows += [_not_measured(p50_name, p50_target), _not_measured(p99_name, p99_target)]
    else:
        over = f"(model {model_ms:g} ms, {long_poll.completed} jobs)"
        for name, target, value, limit in (
            (p50_name, p50_target, long_poll.p50_ms, LONG_POLL_P50_OVER_MODEL_MS),
            (p99_name, p99_target, long_poll.p99_ms, LONG_POLL_P99_OVER_MODEL_MS),
        ):
            rows.append(_bar(name, target, f"{value:.1f} ms {over}", value <= model_ms + limit))
    tuned, bound = _strategy(times, "tuned", SHORT_POLLS), _strategy(times, "bound", SHORT_POLLS)
    if tuned is None or bound is None:
        rows.append(_not_measured(short_name, short_target))
    else:
        measured = (
            f"tuned {tuned.p50_ms:.1f} / {tuned.p99_ms:.1f} ms, "
            f"bound {bound.p50_ms:.1f} / {bound.p99_ms:.1f} ms"
        )
        met = tuned.p50_ms <= bound.p50_ms and tuned.p99_ms <= bound.p99_ms
        rows.append(_bar(short_name, short_target, measured, met))
    return rows


def scaling_bar(scaling: Scaling | None) -> Bar:
    name = "2 workers on 2 cores: sync throughput scales (tuned)"
    target = "factor > 1"
    if scaling is None:
        return _not_measured(name, target)
    builds = scaling.builds
    factor = builds["tuned"].factor
    others = "; ".join(f"{n} {b.factor:.2f}x" for n, b in builds.items() if n != "tuned")
    return _bar(name, target, f"{factor:.2f}x ({others})", factor > 1)


def fixed_rate_bar(fixed_rate: FixedRateLatency | None) -> Bar:
    name = "sync p99 at 70% of the seed's knee load, open loop"
    target = "tuned p99 <= seed p99"
    if fixed_rate is None:
        return _not_measured(name, target)
    rate = fixed_rate.load.rate
    tuned, seed = fixed_rate.builds["tuned"], fixed_rate.builds["seed"]
    measured = f"tuned {tuned.p99_ms:.1f} ms, seed {seed.p99_ms:.1f} ms at {rate:,.0f} rps"
    behind = [
        f"{n} answered only {m.achieved_rate:,.0f} rps"
        for n, m in (("tuned", tuned), ("seed", seed))
        if m.achieved_rate < FELL_BEHIND * rate
    ]
    if behind:
        measured += f" ({'; '.join(behind)}, behind the schedule)"
    return _bar(name, target, measured, tuned.p99_ms <= seed.p99_ms)


def bars(
    ratios: dict[str, Ratio],
    scaling: Scaling | None,
    fixed_rate: FixedRateLatency | None,
    *,
    instructions: InstructionsRun | None = None,
    times: Mapping[BuildName, tuple[TimeToResult, ...] | None] | None = None,
    model_ms: float = 50.0,
) -> tuple[Bar, ...]:
    return (
        *ratio_bars(ratios),
        instructions_bar(instructions),
        *time_to_result_bars(times, model_ms),
        scaling_bar(scaling),
        fixed_rate_bar(fixed_rate),
    )
