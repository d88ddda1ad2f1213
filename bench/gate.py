"""The CI regression gate: the deterministic check, instructions per request against committed
baselines (bench/instructions.toml), and the coarse one, throughput ratios to the seed build
against committed floors (bench/gate.toml)."""

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from bench.results import (
    GateRow,
    GateVerdict,
    InstructionRow,
    InstructionsRun,
    InstructionVerdict,
    Ratio,
)

FLOORS = Path(__file__).resolve().parent / "gate.toml"
BASELINES = Path(__file__).resolve().parent / "instructions.toml"


@dataclass(frozen=True, slots=True)
class GateFloors:
    """gate.toml: the least tuned/seed ratio of each figure, and the exact counts the test
    suite holds the service to."""

    ratio_to_seed_floor: dict[str, float]  # by figure (figures.FIGURES)
    round_trips_per_request: dict[str, int]  # by endpoint
    response_bytes: dict[str, int]  # by answer
    redis_commands_per_request: dict[str, int]  # by request


def load_floors(path: Path = FLOORS) -> GateFloors:
    with path.open("rb") as f:
        floors = tomllib.load(f)
    return GateFloors(
        ratio_to_seed_floor=floors["ratio_to_seed_floor"],
        round_trips_per_request=floors["round_trips_per_request"],
        response_bytes=floors["response_bytes"],
        redis_commands_per_request=floors["redis_commands_per_request"],
    )


def check(ratios: dict[str, Ratio], floors: dict[str, float]) -> GateVerdict:
    """Each figure's ratio of the tuned build to the seed, against its committed floor."""
    rows = tuple(
        GateRow(figure, ratios[figure].vs_seed, floor, ratios[figure].vs_seed >= floor)
        for figure, floor in floors.items()
    )
    return GateVerdict(all(row.ok for row in rows), rows)


@dataclass(frozen=True, slots=True)
class InstructionBaselines:
    """instructions.toml: the instructions per request (or per job) of each counted path, and
    how far a count may move from it before the gate fails."""

    tolerance: float  # a path's, unless tolerance_of names it
    per_unit: dict[str, float]  # by "<build> <path>"
    tolerance_of: dict[str, float] = field(default_factory=dict)

    def tolerance_for(self, path: str) -> float:
        return self.tolerance_of.get(path, self.tolerance)


def load_baselines(path: Path = BASELINES) -> InstructionBaselines:
    with path.open("rb") as f:
        loaded = tomllib.load(f)
    return InstructionBaselines(
        float(loaded["tolerance"]),
        dict(loaded["per_unit"]),
        {name: float(value) for name, value in loaded.get("tolerance_of", {}).items()},
    )


def check_instructions(run: InstructionsRun, baselines: InstructionBaselines) -> InstructionVerdict:
    """Each baseline's path, counted again. More work than the tolerance allows fails; so does
    less, so that an improvement is recorded (`make gate-baseline`) before a later change can
    take it back unnoticed."""
    rows = []
    for path, baseline in baselines.per_unit.items():
        count = run.counts.get(path)
        measured = count.per_unit if count is not None else float("nan")
        change = measured / baseline - 1
        tolerance = baselines.tolerance_for(path)
        rows.append(
            InstructionRow(path, baseline, measured, change, abs(change) <= tolerance, tolerance)
        )
    return InstructionVerdict(all(row.ok for row in rows), baselines.tolerance, tuple(rows))


BASELINES_HEADER = """\
# Instructions per request (per job for "tuned finish") of each path `make gate` counts under
# valgrind's callgrind (bench/instructions.py). Written by `make gate-baseline`: an intended
# change of the service's work is a reviewed change of these lines. docs/benchmarks.md says how
# the tolerance was set from the spread of repeated counts.
"""


TOLERANCE_OF_HEADER = """\
# The paths through the auto-pipeline: a margin for it, though counted one request at a time
# their counts moved 1.3% at most (docs/benchmarks.md)."""


def write_baselines(
    run: InstructionsRun,
    tolerance: float,
    path: Path = BASELINES,
    tolerance_of: dict[str, float] | None = None,
) -> None:
    lines = [BASELINES_HEADER, f"tolerance = {tolerance}", ""]
    if tolerance_of:
        lines += [TOLERANCE_OF_HEADER, "[tolerance_of]"]
        lines += [f'"{name}" = {value}' for name, value in sorted(tolerance_of.items())]
        lines += [""]
    lines += ["[per_unit]"]
    lines += [f'"{name}" = {round(count.per_unit)}' for name, count in sorted(run.counts.items())]
    path.write_text("\n".join(lines) + "\n")
