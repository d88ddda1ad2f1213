"""`make bench-micro` compares the micro-benchmarks with a saved pytest-benchmark baseline and
fails past its threshold; `make bench-micro-baseline` saves one."""

import json
import subprocess
from pathlib import Path

from tests.support.paths import ROOT

# One quick benchmark: what is measured here is the comparison, not the code.
ONLY = "MICRO_ARGS=-k test_parse_request --benchmark-max-time=0.02"


def make(target: str, storage: Path, *settings: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "-s", target, f"MICRO_STORAGE={storage}", ONLY, *settings],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=110,
    )


def test_no_baseline_is_a_clear_error(tmp_path: Path) -> None:
    done = make("bench-micro", tmp_path)
    assert done.returncode != 0
    assert "make bench-micro-baseline first" in done.stderr


def test_a_run_is_compared_with_the_saved_baseline_and_a_regression_fails(tmp_path: Path) -> None:
    saved = make("bench-micro-baseline", tmp_path)
    assert saved.returncode == 0, saved.stdout + saved.stderr
    [baseline] = tmp_path.glob("*/0001_baseline.json")
    # Against the baseline as saved, with room for any noise: passes, and shows both runs.
    compared = make("bench-micro", tmp_path, "BENCH_MICRO_FAIL=mean:1000%")
    assert compared.returncode == 0, compared.stdout + compared.stderr
    assert "0001_baselin" in compared.stdout
    assert "(NOW)" in compared.stdout
    # A baseline a thousand times faster than this machine can run the code: every benchmark
    # is past a 15% threshold, and the run fails.
    recorded = json.loads(baseline.read_text())
    for benchmark in recorded["benchmarks"]:
        stats = benchmark["stats"]
        for key in ("min", "max", "mean", "median", "q1", "q3", "stddev", "iqr"):
            stats[key] = stats[key] / 1000
    baseline.write_text(json.dumps(recorded))
    regressed = make("bench-micro", tmp_path, "BENCH_MICRO_FAIL=mean:15%")
    assert regressed.returncode != 0
    assert "Performance has regressed" in regressed.stdout + regressed.stderr
