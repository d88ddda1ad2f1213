"""The CI regression gate's floors (bench/gate.toml) and the check against them."""

import tomllib
from pathlib import Path
from typing import Any

FLOORS = Path(__file__).resolve().parent / "gate.toml"


def load_floors(path: Path = FLOORS) -> dict[str, Any]:
    with path.open("rb") as f:
        return tomllib.load(f)


def check(ratios: dict[str, dict[str, float]], floors: dict[str, Any]) -> dict[str, Any]:
    """Each figure's ratio of the tuned build to the seed, against its committed floor."""
    rows = []
    for figure, floor in floors["ratio_to_seed_floor"].items():
        measured = ratios[figure]["vs_seed"]
        rows.append({"figure": figure, "ratio": measured, "floor": floor, "ok": measured >= floor})
    return {"passed": all(row["ok"] for row in rows), "rows": rows}
