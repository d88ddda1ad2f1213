"""The bars the tuned build is held to, each with what this run measured and whether it met it.

Throughput bars are ratios to the seed and bound references measured side by side; the scaling
and fixed-rate latency bars come from `make bench`'s own scenarios and are "not measured" in a
gate run.
"""

from bench.lineup import Reference
from bench.results import Bar, FixedRateLatency, Ratio, Scaling, Verdict

# (figure in figures.FIGURES, reference, least ratio; None: reported, no target)
RATIO_BARS: tuple[tuple[str, str, Reference, float | None], ...] = (
    ("sync POST /predict throughput", "sync rps", "seed", 3.0),
    ("sync POST /predict throughput", "sync rps", "bound", 0.6),
    ("GET poll throughput", "poll rps", "seed", 3.0),
    ("GET poll throughput", "poll rps", "bound", 1.0),
    ("async jobs/s submitted", "async jobs/s submitted", "seed", 2.0),
    ("async jobs/s finished", "async jobs/s finished", "seed", 2.0),
    ("async jobs/s submitted", "async jobs/s submitted", "bound", None),
    ("async jobs/s finished", "async jobs/s finished", "bound", None),
)
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
        ratio = ratios[figure].vs(ref)
        target = f">= {least:g}x {ref}" if least is not None else "report it"
        met = None if least is None else ratio >= least
        rows.append(_bar(f"{name} vs {ref}", target, f"{ratio:.2f}x {ref}", met))
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
    ratios: dict[str, Ratio], scaling: Scaling | None, fixed_rate: FixedRateLatency | None
) -> tuple[Bar, ...]:
    return (*ratio_bars(ratios), scaling_bar(scaling), fixed_rate_bar(fixed_rate))
