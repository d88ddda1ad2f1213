"""The figures of every `make bench`, over time: one JSON line per run in the history file
(`BENCH_HISTORY`, reports/history.jsonl), which the report draws; and the same run's figures in
the two formats github-action-benchmark reads (`customBiggerIsBetter`,
`customSmallerIsBetter`), for a user who publishes trends from CI.

A ratio measured side by side is comparable across runs on different days (each run's builds
share its machine's conditions); a build's absolute figures are not, and are kept only as
evidence of how busy the machine was.
"""

import os
import platform
import subprocess
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson

from bench.figures import FIGURES
from bench.lineup import ORDER, REFERENCES
from bench.results import SideBySideRun

# The vendored shape of github-action-benchmark's custom formats (its source is in the file).
GITHUB_ACTION_BENCHMARK_SCHEMA = (
    Path(__file__).resolve().parent / "schemas" / "github-action-benchmark-custom.schema.json"
)


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One run: where and when it ran, and what it measured."""

    commit: str | None  # None outside a git checkout
    dirty: bool  # uncommitted changes to tracked files
    date: str  # ISO 8601, UTC
    machine: dict[str, str]
    command: str
    report: str  # the report folder's name
    # By figure: vs_seed, vs_bound (medians of same-round ratios), their ranges, rounds.
    ratios: dict[str, dict[str, object]]
    # By build, then figure: the build's median-round value.
    figures: dict[str, dict[str, float]] = field(default_factory=dict)
    # "tuned sync" -> instructions per request (per job for finish), when counted.
    instructions: dict[str, float] = field(default_factory=dict)
    # "<build> <strategy>" -> p50_ms and p99_ms, when measured.
    time_to_result: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        commit = (self.commit or "no git")[:7] + ("+" if self.dirty else "")
        return f"{commit} {self.date[:10]} {self.date[11:16]}"


def git_state(root: Path) -> tuple[str | None, bool]:
    """HEAD's commit and whether tracked files differ from it; (None, False) outside git."""
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=False
    )
    if head.returncode:
        return None, False
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    return head.stdout.strip(), bool(status.stdout.strip())


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine(placement: str, idle_states: str = "") -> dict[str, str]:
    return {
        "system": platform.platform(),
        "cpu": _cpu_model(),
        "cores": str(os.cpu_count()),
        "python": platform.python_version(),
        "placement": placement,
        **({"idle_states": idle_states} if idle_states else {}),
    }


def entry(
    results: SideBySideRun, commit: str | None, dirty: bool, now: datetime, host: dict[str, str]
) -> HistoryEntry:
    """A run's history line (pure: the caller says when, where and at which commit)."""
    ratios: dict[str, dict[str, object]] = {
        figure: {
            "vs_seed": ratio.vs_seed,
            "vs_bound": ratio.vs_bound,
            "seed_range": list(ratio.seed_range),
            "bound_range": list(ratio.bound_range),
            "rounds": ratio.rounds,
        }
        for figure, ratio in results.ratios.items()
    }
    figures: dict[str, dict[str, float]] = {
        name: {figure: of(build) for figure, of in FIGURES.items()}
        for name, build in results.builds.items()
    }
    counted = results.instructions.counts if results.instructions else {}
    times = {
        f"{name} {ttr.strategy}": {"p50_ms": ttr.p50_ms, "p99_ms": ttr.p99_ms}
        for name, build in results.builds.items()
        for ttr in build.time_to_result or ()
        if ttr.supported and ttr.completed
    }
    return HistoryEntry(
        commit=commit,
        dirty=dirty,
        date=now.astimezone(UTC).isoformat(timespec="seconds"),
        machine=host,
        command=results.meta.command,
        report=results.meta.started,
        ratios=ratios,
        figures=figures,
        instructions={path: count.per_unit for path, count in counted.items()},
        time_to_result=times,
    )


def append(path: Path, line: HistoryEntry) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as f:
        f.write(orjson.dumps(asdict(line)) + b"\n")


def load(path: Path) -> list[HistoryEntry]:
    """Every run the file holds, oldest first; a line that does not parse (a run killed while
    it wrote) is skipped, not fatal."""
    if not path.exists():
        return []
    entries = []
    for raw in path.read_bytes().splitlines():
        try:
            entries.append(HistoryEntry(**orjson.loads(raw)))
        except (orjson.JSONDecodeError, TypeError):
            continue
    return entries


def _range(low_high: tuple[float, float]) -> str:
    return f"{low_high[0]:.2f}-{low_high[1]:.2f}"


def bigger_is_better(results: SideBySideRun) -> list[dict[str, object]]:
    """github-action-benchmark's `customBiggerIsBetter`: each ratio, and the tuned build's
    throughput."""
    out: list[dict[str, object]] = []
    for figure, ratio in results.ratios.items():
        for reference in REFERENCES:
            out.append(
                {
                    "name": f"{figure} / {reference}",
                    "unit": "x",
                    "value": round(ratio.vs(reference), 4),
                    "range": _range(ratio.range_vs(reference)),
                    "extra": f"median of {ratio.rounds} same-round ratios, range beside it",
                }
            )
    tuned = results.builds[ORDER[0]]
    for figure, of in FIGURES.items():
        out.append(
            {
                "name": f"tuned {figure}",
                "unit": "jobs/s" if "jobs" in figure else "req/s",
                "value": round(of(tuned), 1),
                "extra": "the median round's; drifts with the machine, the ratios do not",
            }
        )
    return out


def smaller_is_better(results: SideBySideRun) -> list[dict[str, object]]:
    """github-action-benchmark's `customSmallerIsBetter`: instructions per request and time to
    result, when the run measured them."""
    out: list[dict[str, object]] = []
    counted = results.instructions.counts if results.instructions else {}
    for path, count in counted.items():
        unit = "instructions/job" if path.endswith("finish") else "instructions/request"
        out.append({"name": f"{path} instructions", "unit": unit, "value": round(count.per_unit)})
    for name, build in results.builds.items():
        for ttr in build.time_to_result or ():
            if not (ttr.supported and ttr.completed):
                continue
            for q, value in (("p50", ttr.p50_ms), ("p99", ttr.p99_ms)):
                out.append(
                    {
                        "name": f"{name} time to result {ttr.strategy} {q}",
                        "unit": "ms",
                        "value": round(value, 2),
                        "extra": f"{ttr.completed} jobs over {ttr.rounds} rounds",
                    }
                )
    return out


def write_github_action_benchmark(out: Path, results: SideBySideRun) -> list[Path]:
    """benchmark-bigger.json and benchmark-smaller.json in the report folder; the smaller one
    only when the run measured something smaller-is-better (the action refuses an empty list)."""
    written = []
    for name, entries in (
        ("benchmark-bigger.json", bigger_is_better(results)),
        ("benchmark-smaller.json", smaller_is_better(results)),
    ):
        if entries:
            target = out / name
            target.write_bytes(orjson.dumps(entries, option=orjson.OPT_INDENT_2))
            written.append(target)
    return written
