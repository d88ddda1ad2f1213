"""The bars the tuned build is held to, each with what this run measured and whether it met it.

Throughput bars are ratios to the seed and bound references measured side by side; the scaling
and fixed-rate latency bars come from `make bench`'s own scenarios and are "not measured" in a
gate run.
"""

from typing import Any, Literal

Verdict = Literal["met", "NOT met", "reported", "not measured"]

# (figure in figures.FIGURES, reference, least ratio; None: reported, no target)
RATIO_BARS: tuple[tuple[str, str, str, float | None], ...] = (
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


def _bar(name: str, target: str, measured: str, met: bool | None) -> dict[str, Any]:
    verdict: Verdict = "reported" if met is None else "met" if met else "NOT met"
    return {"bar": name, "target": target, "measured": measured, "verdict": verdict}


def _not_measured(name: str, target: str) -> dict[str, Any]:
    verdict: Verdict = "not measured"
    return {"bar": name, "target": target, "measured": NOT_MEASURED, "verdict": verdict}


def ratio_bars(ratios: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    rows = []
    for name, figure, ref, least in RATIO_BARS:
        ratio = ratios[figure][f"vs_{ref}"]
        target = f">= {least:g}x {ref}" if least is not None else "report it"
        met = None if least is None else ratio >= least
        rows.append(_bar(f"{name} vs {ref}", target, f"{ratio:.2f}x {ref}", met))
    return rows


def scaling_bar(scaling: dict[str, Any] | None) -> dict[str, Any]:
    name = "2 workers on 2 cores: sync throughput scales (tuned)"
    target = "factor > 1"
    if scaling is None:
        return _not_measured(name, target)
    builds = scaling["builds"]
    factor = builds["tuned"]["factor"]
    others = "; ".join(f"{n} {b['factor']:.2f}x" for n, b in builds.items() if n != "tuned")
    return _bar(name, target, f"{factor:.2f}x ({others})", factor > 1)


def fixed_rate_bar(fixed_rate: dict[str, Any] | None) -> dict[str, Any]:
    name = "sync p99 at 70% of the seed's knee load, open loop"
    target = "tuned p99 <= seed p99"
    if fixed_rate is None:
        return _not_measured(name, target)
    rate = fixed_rate["rate"]
    tuned, seed = (fixed_rate["builds"][n] for n in ("tuned", "seed"))
    measured = f"tuned {tuned['p99_ms']:.1f} ms, seed {seed['p99_ms']:.1f} ms at {rate:,.0f} rps"
    behind = [
        f"{n} answered only {m['achieved_rate']:,.0f} rps"
        for n, m in (("tuned", tuned), ("seed", seed))
        if m["achieved_rate"] < FELL_BEHIND * rate
    ]
    if behind:
        measured += f" ({'; '.join(behind)}, behind the schedule)"
    return _bar(name, target, measured, tuned["p99_ms"] <= seed["p99_ms"])


def bars(results: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        *ratio_bars(results["ratios"]),
        scaling_bar(results.get("scaling")),
        fixed_rate_bar(results.get("fixed_rate")),
    ]
