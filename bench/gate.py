"""The CI regression gate's floors (bench/gate.toml) and the check against them."""

import tomllib
from dataclasses import dataclass
from pathlib import Path

from bench.results import GateRow, GateVerdict, Ratio

FLOORS = Path(__file__).resolve().parent / "gate.toml"


@dataclass(frozen=True, slots=True)
class GateFloors:
    """gate.toml: the least tuned/seed ratio of each figure, and the exact counts the test
    suite holds the service to."""

    ratio_to_seed_floor: dict[str, float]  # by figure (figures.FIGURES)
    round_trips_per_request: dict[str, int]  # by endpoint
    response_bytes: dict[str, int]  # by answer


def load_floors(path: Path = FLOORS) -> GateFloors:
    with path.open("rb") as f:
        floors = tomllib.load(f)
    return GateFloors(
        ratio_to_seed_floor=floors["ratio_to_seed_floor"],
        round_trips_per_request=floors["round_trips_per_request"],
        response_bytes=floors["response_bytes"],
    )


def check(ratios: dict[str, Ratio], floors: dict[str, float]) -> GateVerdict:
    """Each figure's ratio of the tuned build to the seed, against its committed floor."""
    rows = tuple(
        GateRow(figure, ratios[figure].vs_seed, floor, ratios[figure].vs_seed >= floor)
        for figure, floor in floors.items()
    )
    return GateVerdict(all(row.ok for row in rows), rows)
