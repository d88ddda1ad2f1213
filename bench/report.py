"""The report folder: raw results (JSON, latency distributions as CSV, pytest-benchmark's file)
and one self-contained HTML page; and the short table printed at the end of a run."""

import math
from collections.abc import Callable
from html import escape
from pathlib import Path
from typing import TypeVar

from bench import svg
from bench.figures import FIGURES
from bench.history import HistoryEntry
from bench.lineup import ORDER, REFERENCES, TITLES, BuildName, Reference
from bench.results import (
    BuildFigures,
    FixedRateRun,
    MicroBenchmark,
    Ratio,
    SideBySideRun,
    StrategyKind,
    to_json,
)

PERCENTILES = (50.0, 90.0, 99.0, 99.9)
T = TypeVar("T")


def _fmt(value: float | None, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:,.{digits}f}"


def _of_every_build(
    results: SideBySideRun, read: Callable[[BuildFigures], T | None]
) -> dict[BuildName, T] | None:
    """One scenario's result for every build; None when the run did not measure it (a gate
    run measures only throughput)."""
    measured = {n: m for n in ORDER if (m := read(results.builds[n])) is not None}
    return measured if len(measured) == len(ORDER) else None


def _table(head: list[str], rows: list[list[str]], cls: str = "") -> str:
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


def _ratio_cell(ratio: Ratio, reference: Reference) -> str:
    """The median same-round ratio, and the range of the rounds under it."""
    cell = _fmt(ratio.vs(reference), 2) + "x"
    if ratio.rounds > 1:
        low, high = ratio.range_vs(reference)
        cell += f' <span class="range">({_fmt(low, 2)}-{_fmt(high, 2)})</span>'
    return cell


def _side_by_side(results: SideBySideRun) -> str:
    builds, ratios = results.builds, results.ratios
    head = ["figure", *ORDER, "tuned / seed", "tuned / bound"]
    rows = []
    for figure, of in FIGURES.items():
        cells = [escape(figure)]
        cells += [f'<span data-build="{n}">{_fmt(of(builds[n]))}</span>' for n in ORDER]
        cells += [_ratio_cell(ratios[figure], ref) for ref in REFERENCES]
        rows.append(cells)
    for q in (50, 99):
        rows.append(
            [f"sync latency p{q} (ms)"]
            + [_fmt(builds[n].sync.percentile_ms(q), 2) for n in ORDER]
            + ["", ""]
        )
    chart = svg.grouped_bars(
        "Throughput, builds side by side",
        "per second",
        list(FIGURES),
        {n: [of(builds[n]) for of in FIGURES.values()] for n in ORDER},
    )
    return _table(head, rows, "side-by-side") + chart


def _latency(results: SideBySideRun) -> str:
    builds = results.builds
    groups = [f"p{q:g}" for q in PERCENTILES]
    parts = []
    for i, tuned in enumerate(builds["tuned"].load_runs()):
        parts.append(
            svg.grouped_bars(
                f"{tuned.scenario}: latency percentiles at {tuned.connections} connections",
                "ms",
                groups,
                {
                    n: [builds[n].load_runs()[i].percentile_ms(q) for q in PERCENTILES]
                    for n in ORDER
                },
            )
        )
    return "".join(parts)


def _sweep(results: SideBySideRun) -> str:
    sweeps = _of_every_build(results, lambda build: build.sweep)
    if sweeps is None:
        return "<p>Not part of this run.</p>"
    series: dict[str, list[tuple[float, float]]] = {}
    p99: dict[str, list[tuple[float, float]]] = {}
    knees: dict[str, tuple[float, float] | None] = {}
    target = sweeps["tuned"].p99_target_ms
    rows = []
    for n, measured in sweeps.items():
        points, knee = measured.points, measured.knee
        series[n] = [(p.connections, p.rps) for p in points]
        p99[n] = [(p.connections, p.p99_ms) for p in points]
        knees[n] = (knee.connections, knee.rps) if knee else None
        rows.append(
            [
                n,
                _fmt(knee.rps) if knee else "none under target",
                str(knee.connections) if knee else "n/a",
                " / ".join(_fmt(p.p99_ms, 1) for p in points),
            ]
        )
    return (
        svg.lines(
            "Sync throughput vs concurrency (circle: knee)", "connections", "rps", series, knees
        )
        + svg.lines("p99 latency vs concurrency", "connections", "ms", p99, {})
        + f"<p>Knee: the most throughput whose p99 stays under {target:g} ms.</p>"
        + _table(["build", "knee rps", "at connections", "p99 ms per level"], rows, "knee")
    )


# What a strategy's requests per result count, and why a build may not offer it (short polls
# it always does).
_PER_RESULT: dict[StrategyKind, tuple[str, str]] = {
    "poll": ("polls", "answers at once, ignores wait"),
    "long-poll": ("polls", "answers at once, ignores wait"),
    "sse": ("event streams", "no event stream"),
    "webhook": ("deliveries", "delivers no webhook"),
}


def _time_to_result(results: SideBySideRun) -> str:
    by_build = _of_every_build(results, lambda build: build.time_to_result)
    if by_build is None:
        return "<p>Not part of this run.</p>"
    strategies = [t.strategy for t in by_build["tuned"]]
    rows = []
    for i, strategy in enumerate(strategies):
        row = [escape(strategy)]
        for n in ORDER:
            t = by_build[n][i]
            counted, missing = _PER_RESULT[t.kind]
            row.append(
                f"{_fmt(t.p50_ms, 1)} / {_fmt(t.p99_ms, 1)} ms, "
                f"{_fmt(t.polls_per_result, 1)} {counted}"
                if t.supported
                else f"not supported ({missing})"
            )
        rows.append(row)
    chart = svg.grouped_bars(
        "Time to result p50 by strategy",
        "ms",
        strategies,
        {n: [t.p50_ms if t.supported else math.nan for t in by_build[n]] for n in ORDER},
    )
    config = results.meta.config
    note = (
        f"<p>{_fmt(config.ttr_rate)} jobs/s for {config.ttr_duration_s:g} s per strategy, "
        f"open loop, model latency {config.ttr_model_ms:g} ms; cells: p50 / p99 from the "
        "scheduled submit to the result in hand (the poll's answer, the stream's final event, "
        "or the webhook's arrival at the harness's receiver), and the requests per result "
        "besides the submit.</p>"
    )
    return note + _table(["strategy", *ORDER], rows, "ttr") + chart


def _redis_work(results: SideBySideRun) -> str:
    by_build = _of_every_build(results, lambda build: build.redis_work)
    if by_build is None:
        return "<p>Not part of this run.</p>"
    rows = []
    for i, (endpoint, _) in enumerate(by_build["tuned"].by_endpoint()):
        row = [endpoint]
        for n in ORDER:
            _, work = by_build[n].by_endpoint()[i]
            commands = ", ".join(f"{k} {v:g}" for k, v in work.commands.items()) or "none"
            row.append(f"{work.round_trips:g} round trips ({escape(commands)})")
        rows.append(row)
    return _table(["per request", *ORDER], rows, "redis-work")


def _models(results: SideBySideRun) -> str:
    by_build = _of_every_build(results, lambda build: build.models)
    if by_build is None:
        return "<p>Not part of this run.</p>"
    labels = list(by_build["tuned"])
    rows = [
        [escape(label)]
        + [_fmt(by_build[n][label].rps) for n in ORDER]
        + [
            _fmt(by_build["tuned"][label].rps / by_build[r][label].rps, 2) + "x"
            for r in ("seed", "bound")
        ]
        for label in labels
    ]
    chart = svg.grouped_bars(
        "Sync rps with model emulation and the real model",
        "rps",
        labels,
        {n: [by_build[n][label].rps for label in labels] for n in ORDER},
    )
    return _table(["model", *ORDER, "tuned / seed", "tuned / bound"], rows, "models") + chart


def _bars(results: SideBySideRun) -> str:
    rows = [
        [escape(b.name), escape(b.measured), escape(b.target), escape(b.verdict)]
        for b in results.bars
    ]
    return (
        "<p>Every figure from this one run; ratios are medians of same-round ratios to the "
        "references measured side by side, with their range."
        "</p>" + _table(["bar", "measured", "target", "verdict"], rows, "bars")
    )


def _percentiles_ms(run: FixedRateRun) -> list[float]:
    """The PERCENTILES of a fixed-rate run."""
    return [run.p50_ms, run.p90_ms, run.p99_ms, run.p999_ms]


def _fixed_rate(results: SideBySideRun) -> str:
    fixed = results.fixed_rate
    if fixed is None:
        return "<p>Not part of this run.</p>"
    head = ["load", "build", *(f"p{q:g} ms" for q in PERCENTILES), "max ms"]
    head += ["achieved rps", "errors", "connections"]

    def row(load: str, build: str, m: FixedRateRun) -> list[str]:
        errors = ", ".join(f"{k}: {v}" for k, v in m.errors.items()) or "none"
        return [
            load,
            build,
            *(_fmt(ms, 1) for ms in (*_percentiles_ms(m), m.max_ms)),
            _fmt(m.achieved_rate),
            escape(errors),
            str(m.connections),
        ]

    shared = f"{_fmt(fixed.load.rate)} rps"
    rows = [row(shared, n, fixed.builds[n]) for n in ORDER]
    own = fixed.tuned_own_load
    rows.append(row(f"{_fmt(own.rate)} rps", "tuned (own knee)", fixed.tuned_at_own_load))
    seconds = results.meta.config.fixed_rate_duration_s
    chart = svg.grouped_bars(
        f"Sync latency at a fixed {_fmt(fixed.load.rate)} rps, open loop",
        "ms",
        [f"p{q:g}" for q in PERCENTILES],
        {n: _percentiles_ms(fixed.builds[n]) for n in ORDER},
    )
    note = (
        f"<p>Sync <code>POST /predict</code> sent on a fixed schedule for {seconds:g} s whatever "
        "the server does (open loop), each latency counted from the request's scheduled time, "
        f"so a stall shows. Shared load: {escape(fixed.load.basis)}, the same for every build. "
        f"Informational: the tuned build at {escape(own.basis)}.</p>"
    )
    return note + _table(head, rows, "fixed-rate") + chart


def _scaling(results: SideBySideRun) -> str:
    scaling = results.scaling
    if scaling is None:
        return "<p>Not part of this run.</p>"
    rows = []
    for name, build in scaling.builds.items():
        one, two = build.one_worker, build.two_workers
        rows.append(
            [
                name,
                _fmt(one.rps),
                _fmt(two.rps),
                _fmt(build.factor, 2) + "x",
                f"{one.generator_cpu:.0%} / {two.generator_cpu:.0%}",
                f"{_fmt(one.p99_ms, 1)} / {_fmt(two.p99_ms, 1)}",
            ]
        )
    note = (
        f"<p>Sync rps with <code>WEB_CONCURRENCY</code> 1 and 2, {scaling.connections} wrk "
        f"connections; {escape(scaling.placement)}, so wrk competes with the servers: its "
        "CPU use (a core's worth per second of run) is shown next to each figure, and the "
        "saturated-generator check does not apply.</p>"
    )
    head = ["build", "1 worker rps", "2 workers rps", "factor", "wrk CPU 1 / 2"]
    return note + _table([*head, "p99 ms 1 / 2"], rows, "scaling")


def _micro(micro: tuple[MicroBenchmark, ...] | None) -> str:
    if micro is None:
        return "<p>Not part of this run.</p>"
    rows = [
        [escape(b.group or ""), escape(b.name), _fmt(b.mean_s * 1e6, 2), _fmt(b.ops)] for b in micro
    ]
    return _table(["group", "benchmark", "mean (us)", "ops/s"], rows, "micro")


def _gate(results: SideBySideRun) -> str:
    if results.gate is None:
        return ""
    rows = [
        [escape(r.figure), _fmt(r.ratio, 2), _fmt(r.floor, 2), "pass" if r.ok else "FAIL"]
        for r in results.gate.rows
    ]
    verdict = "passed" if results.gate.passed else "FAILED"
    return f"<h2>CI gate: {verdict}</h2>" + _table(
        ["figure", "tuned / seed", "floor", ""], rows, "gate"
    )


CSS = """
body{font-family:sans-serif;margin:2em;max-width:1400px;color:#222}
table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
td:first-child,th:first-child{text-align:left}th{background:#f4f4f4}
svg.chart{margin:0.5em 1em 0.5em 0;border:1px solid #eee}
"""


def _history(entries: tuple[HistoryEntry, ...]) -> str:
    """Each ratio over the runs the history file holds (this one last): a chart per reference."""
    if len(entries) < 2:
        return (
            f"<p>The history file holds {len(entries)} run(s); the chart of the ratios over "
            "time needs two. Each <code>make bench</code> adds one (<code>BENCH_HISTORY</code>)."
            "</p>"
        )
    labels = [entry.label for entry in entries]
    charts = []
    for reference in REFERENCES:
        series = {
            f"{figure} / {reference}": [
                _as_float(entry.ratios.get(figure, {}).get(f"vs_{reference}")) for entry in entries
            ]
            for figure in FIGURES
        }
        charts.append(svg.over_time(f"tuned / {reference}, run by run", "x", labels, series))
    return (
        f"<p>{len(entries)} runs of the history file, oldest first; each point is the run's "
        "median same-round ratio.</p>" + "".join(charts)
    )


def _as_float(value: object) -> float:
    return float(value) if isinstance(value, int | float) else math.nan


def render_html(
    results: SideBySideRun,
    micro: tuple[MicroBenchmark, ...] | None,
    history: tuple[HistoryEntry, ...] = (),
) -> str:
    meta = results.meta
    builds = "".join(f"<li><b>{n}</b>: {escape(TITLES[n])}</li>" for n in ORDER)
    idle_states = f"{escape(meta.idle_states)}; " if meta.idle_states else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Benchmark {escape(meta.started)}</title>
<style>{CSS}</style></head><body>
<h1>Benchmark report {escape(meta.started)}</h1>
<p><code>{escape(meta.command)}</code>, {meta.seconds:g} s; {escape(meta.placement)};
{idle_states}{escape(meta.wrk)}, one thread, {meta.config.connections} connections unless said.
Ratios are measured side by side in this run: each is the median of the ratios of the same
round ({meta.config.rounds} interleaved rounds, the order alternating), with their range; a
build's absolute figures are its median round's, and drift with the machine.</p>
<ul>{builds}</ul>
<h2>Bars</h2>{_bars(results)}
{_gate(results)}
<h2>Builds side by side</h2>{_side_by_side(results)}
<h2>Latency percentiles</h2>{_latency(results)}
<h2>Throughput vs concurrency</h2>{_sweep(results)}
<h2>Latency at a fixed rate (open loop)</h2>{_fixed_rate(results)}
<h2>Scaling with 2 workers</h2>{_scaling(results)}
<h2>Time to result by strategy</h2>{_time_to_result(results)}
<h2>Redis work per API request</h2>{_redis_work(results)}
<h2>Model emulation and the real model</h2>{_models(results)}
<h2>Micro-benchmarks</h2>{_micro(micro)}
<h2>History</h2>{_history(history)}
</body></html>
"""


def write_report(
    out: Path,
    results: SideBySideRun,
    micro: tuple[MicroBenchmark, ...] | None,
    history: tuple[HistoryEntry, ...] = (),
) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_bytes(to_json(results))
    histograms = out / "histograms"
    histograms.mkdir(exist_ok=True)
    for name, build in results.builds.items():
        for run in build.load_runs():
            lines = ["percentile,latency_ms"] + [f"{p},{ms}" for p, ms in run.latency_cdf_ms]
            (histograms / f"{name}-{run.scenario}.csv").write_text("\n".join(lines) + "\n")
    page = out / "index.html"
    page.write_text(render_html(results, micro, history))
    return page


def print_table(results: SideBySideRun, out: Path) -> None:
    builds, ratios = results.builds, results.ratios
    print("\nbars:")
    for bar in results.bars:
        print(f"  {bar.verdict:12} {bar.name}: {bar.measured} (target {bar.target})")
    print(f"\n{'figure':28} {'tuned':>9} {'seed':>9} {'bound':>9} {'/seed':>7} {'/bound':>7}")
    for figure, of in FIGURES.items():
        values = " ".join(f"{of(builds[n]):9,.0f}" for n in ORDER)
        r = ratios[figure]
        spread = "".join(
            f"  {ref} {low:.2f}-{high:.2f}x"
            for ref in REFERENCES
            for low, high in [r.range_vs(ref)]
            if r.rounds > 1
        )
        print(f"{figure:28} {values} {r.vs_seed:6.2f}x {r.vs_bound:6.2f}x{spread}")
    sweeps = _of_every_build(results, lambda build: build.sweep)
    if sweeps is not None:
        knees = []
        for n in ORDER:
            k = sweeps[n].knee
            knees.append(f"{n} {k.rps:,.0f} rps @ {k.connections}" if k else f"{n} none")
        print(f"knee (p99 <= {sweeps['tuned'].p99_target_ms:g} ms):  " + "; ".join(knees))
    times = _of_every_build(results, lambda build: build.time_to_result)
    if times is not None:
        print("time to result p50/p99 ms (requests per result besides the submit):")
        for i, t in enumerate(times["tuned"]):
            cells = []
            for n in ORDER:
                m = times[n][i]
                cells.append(
                    f"{n} {m.p50_ms:.0f}/{m.p99_ms:.0f} ({m.polls_per_result:.1f})"
                    if m.supported
                    else f"{n} not supported"
                )
            print(f"  {t.strategy:22} " + "; ".join(cells))
    fixed = results.fixed_rate
    if fixed is not None:
        latencies = "; ".join(
            f"{n} {fixed.builds[n].p50_ms:.1f}/{fixed.builds[n].p99_ms:.1f}" for n in ORDER
        )
        print(f"fixed rate {fixed.load.rate:,.0f} rps, p50/p99 ms: {latencies}")
        own = fixed.tuned_at_own_load
        print(
            f"fixed rate {fixed.tuned_own_load.rate:,.0f} rps (tuned's own knee), tuned p50/p99 "
            f"ms: {own.p50_ms:.1f}/{own.p99_ms:.1f}"
        )
    scaling = results.scaling
    if scaling is not None:
        for name, build in scaling.builds.items():
            one, two = build.one_worker, build.two_workers
            print(
                f"scaling {name:6} {one.rps:8,.0f} -> {two.rps:8,.0f} rps "
                f"({build.factor:.2f}x; wrk CPU {one.generator_cpu:.0%} / "
                f"{two.generator_cpu:.0%}; {scaling.connections} connections, unpinned)"
            )
    if results.gate is not None:
        for row in results.gate.rows:
            verdict = "ok" if row.ok else "FAIL"
            print(f"gate {row.figure:24} {row.ratio:.2f}x >= floor {row.floor:.2f}x: {verdict}")
        print("gate: " + ("passed" if results.gate.passed else "FAILED"))
    print(f"report: {out / 'index.html'}")
