"""The Grafana dashboards in the repository, read as the tests need them."""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.paths import ROOT

DASHBOARDS = ROOT / "dashboards" / "grafana" / "dashboards"


@dataclass(frozen=True)
class Panel:
    dashboard: str
    title: str
    raw: dict[str, Any]

    @property
    def exprs(self) -> list[str]:
        return [target["expr"] for target in self.raw["targets"]]


def dashboards() -> dict[Path, dict[str, Any]]:
    return {path: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


def panels() -> list[Panel]:
    return [
        Panel(board["uid"], raw["title"], raw)
        for board in dashboards().values()
        for raw in board["panels"]
    ]
