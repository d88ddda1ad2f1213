"""`make loadtest` and `make locust` as a user runs them, in a subprocess: Locust patches the
standard library with gevent on import, so it never runs inside the test process."""

import csv
import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.paths import ROOT


@dataclass
class LoadtestRun:
    returncode: int
    output: str
    reports: Path
    name: str

    def summary(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(
            (self.reports / f"{self.name}_summary.json").read_text()
        )
        return loaded

    def stats(self) -> dict[tuple[str, str], dict[str, str]]:
        """Locust's CSV stats, by (type, name)."""
        with (self.reports / f"{self.name}_stats.csv").open() as rows:
            return {(row["Type"], row["Name"]): row for row in csv.DictReader(rows)}

    def history(self) -> list[dict[str, str]]:
        with (self.reports / f"{self.name}_stats_history.csv").open() as rows:
            return list(csv.DictReader(rows))


def make_command(target: str) -> list[str]:
    make = shutil.which("make")
    assert make is not None
    return [make, "--no-print-directory", "-C", str(ROOT), target]


def loadtest_env(url: str, reports: Path, env: Mapping[str, str]) -> dict[str, str]:
    """Short runs with a few users, against the tests' own server."""
    return {
        **os.environ,
        "TARGET_URL": url,
        "REPORTS_DIR": str(reports),
        "LOCUST_USERS": "4",
        "LOCUST_SPAWN_RATE": "4",
        "LOCUST_RUN_TIME": "3s",
        **env,
    }


def loadtest(url: str, reports: Path, **env: str) -> LoadtestRun:
    result = subprocess.run(
        make_command("loadtest"),
        env=loadtest_env(url, reports, env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    name = "-".join(filter(None, [env.get("SCENARIO", "mixed"), env.get("SHAPE", "")]))
    return LoadtestRun(result.returncode, result.stdout + result.stderr, reports, name)
