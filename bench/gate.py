"""The CI regression gate's floors (bench/gate.toml) and the check against them."""

import tomllib
from pathlib import Path
from typing import Any

from bench.results import GateRow, GateVerdict, Ratio

FLOORS = Path(__file__).resolve().parent / "gate.toml"


def load_floors(path: Path = FLOORS) -> dict[str, Any]:
    with path.open("rb") as f:
        return tomllib.load(f)


def check(ratios: dict[str, Ratio], floors: dict[str, Any]) -> GateVerdict:
    """Each figure's ratio of the tuned build to the seed, against its committed floor."""
    rows = tuple(
        GateRow(figure, ratios[figure].vs_seed, floor, ratios[figure].vs_seed >= floor)
        for figure, floor in floors["ratio_to_seed_floor"].items()
    )
    return GateVerdict(all(row.ok for row in rows), rows)
