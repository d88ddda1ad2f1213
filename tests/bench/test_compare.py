"""`make bench-compare`: the interval and the verdicts on ratios made here, BASE exported and
given a Python, and a short real run of this tree against itself."""

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from bench import compare
from bench.compare import NO_DIFFERENCE, CompareConfig, Figure, verdict
from bench.placement import default_placement
from bench.stats import bootstrap_median_interval
from tests.support.paths import ROOT
from tests.support.tools import require


def test_the_bootstrap_interval_holds_the_median_and_repeats() -> None:
    values = [0.97, 1.02, 0.99, 1.04, 1.01, 0.98]
    low, high = bootstrap_median_interval(values)
    assert min(values) <= low <= 1.0 <= high <= max(values)
    assert bootstrap_median_interval(values) == (low, high)  # seeded: same values, same interval
    assert bootstrap_median_interval([1.5]) == (1.5, 1.5)


def test_a_tenth_slower_every_round_is_slower_and_noise_around_one_is_no_difference() -> None:
    slower = (0.91, 0.88, 0.9, 0.93, 0.89, 0.9)
    noise = (0.97, 1.03, 0.99, 1.02, 1.01, 0.98)

    def said(ratios: tuple[float, ...], bigger_is_better: bool = True) -> str:
        return verdict(ratios, bigger_is_better=bigger_is_better, confidence=0.95, min_change=0.03)[
            2
        ]

    assert said(slower) == "slower"
    assert said(tuple(1 / r for r in slower)) == "faster"
    assert said(noise) == NO_DIFFERENCE
    # A consistent move smaller than the least change the noise allows gets no verdict.
    assert said((0.99, 0.985, 0.99, 0.988, 0.991, 0.987)) == NO_DIFFERENCE
    # Fewer instructions is a bigger ratio's opposite: smaller is better.
    assert said(slower, bigger_is_better=False) == "faster"


def test_instruction_counts_past_the_tolerance_are_a_verdict() -> None:
    from bench.results import InstructionCount, InstructionsRun

    base = InstructionsRun({"tuned sync": InstructionCount.of(100, 18_000_000)})
    counted: dict[compare.Side, InstructionsRun] = {
        "base": base,
        "head": InstructionsRun({"tuned sync": InstructionCount.of(100, 19_980_000)}),
    }
    (figure,) = compare.instruction_figures(counted, CompareConfig(instructions_tolerance=0.03))
    assert figure.verdict == "slower"
    assert figure.median == pytest.approx(1.11)
    same = compare.instruction_figures({"base": base, "head": base}, CompareConfig())
    assert same[0].verdict == NO_DIFFERENCE


def test_the_markdown_table_has_a_row_per_figure_with_interval_and_verdict() -> None:
    tree = compare.Tree("HEAD~1 (abc1234)", "a" * 40, ROOT, sys.executable)
    figure = Figure("sync rps", "req/s", True, (1000.0, 1100.0), (900.0, 990.0), (0.9, 0.9),
                    0.9, (0.9, 0.9), "slower", "the rule")  # fmt: skip
    table = compare.markdown(
        compare.Comparison(tree, tree, "now", 1.0, "pinned", {}, (figure,), ("a note",))
    )
    assert (
        "| sync rps (req/s) | 1,050 | 945 | 0.900 | 0.900-0.900 | 0.900-0.900 | **slower** |"
        in (table)
    )
    assert "- verdict: the rule" in table
    assert "- a note" in table


def test_base_is_exported_once_and_shares_this_python_when_the_locks_match(
    tmp_path: Path,
) -> None:
    tree = compare.export("HEAD", tmp_path)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    assert tree == tmp_path / head.stdout.strip()
    assert (tree / "service" / "__main__.py").exists()
    marker = (tree / ".exported").stat().st_mtime_ns
    assert compare.export("HEAD", tmp_path) == tree
    assert (tree / ".exported").stat().st_mtime_ns == marker  # not exported twice
    # The same lock file as this tree's (the working tree may have changed it since HEAD).
    (tree / compare.LOCK).write_bytes((ROOT / compare.LOCK).read_bytes())
    assert compare.virtualenv(tree, tmp_path) == sys.executable


@pytest.mark.served
@pytest.mark.wrk
@pytest.mark.timeout(300)
def test_head_against_itself_is_no_difference_in_a_real_short_run(tmp_path: Path) -> None:
    require("wrk", "wrk")
    cfg = CompareConfig(rounds=2, duration=1, connections=16, instructions=False)
    measured = compare.compare("HEAD", default_placement(), cfg, "test")
    names = [f.name for f in measured.figures]
    assert names == list(compare.THROUGHPUT)
    for figure in measured.figures:
        assert len(figure.ratios) == 2
        assert all(b > 0 and h > 0 for b, h in zip(figure.base, figure.head, strict=True))
        assert figure.interval[0] <= figure.median <= figure.interval[1]
    target = compare.write(tmp_path, measured)
    assert "| sync rps (req/s) |" in target.read_text()
    saved = orjson.loads((tmp_path / "compare.json").read_bytes())
    assert saved["base"]["commit"] == saved["head"]["commit"].removesuffix("+changes")
