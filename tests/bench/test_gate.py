"""The gate's deterministic check: instruction counts against the committed baselines."""

from pathlib import Path

from bench.gate import InstructionBaselines, check_instructions, load_baselines, write_baselines
from bench.instructions import COUNTED
from bench.results import InstructionCount, InstructionsRun


def test_the_committed_baselines_cover_every_path_the_gate_counts() -> None:
    baselines = load_baselines()
    assert set(baselines.per_unit) == {f"{b} {p}" for b, p in COUNTED if b == "tuned"}
    assert 0 < baselines.tolerance <= 0.05
    assert all(0 < baselines.tolerance_for(path) <= 0.05 for path in baselines.per_unit)
    # The sync path is steady to a few tenths of a percent: 5% more work on it must fail.
    assert baselines.tolerance_for("tuned sync") < 0.05


def _run(**per_unit: float) -> InstructionsRun:
    return InstructionsRun({k.replace("_", " "): InstructionCount(100, round(v * 100), v)
                            for k, v in per_unit.items()})  # fmt: skip


def test_the_gate_fails_more_work_and_less_but_not_noise() -> None:
    baselines = InstructionBaselines(0.02, {"tuned sync": 200_000.0, "tuned poll": 300_000.0})
    assert check_instructions(_run(tuned_sync=203_000, tuned_poll=298_000), baselines).passed
    more = check_instructions(_run(tuned_sync=210_000, tuned_poll=300_000), baselines)
    assert not more.passed
    assert [row.ok for row in more.rows] == [False, True]
    assert not check_instructions(_run(tuned_sync=190_000, tuned_poll=300_000), baselines).passed
    # A path that was not counted is a failure, not a pass.
    assert not check_instructions(_run(tuned_sync=200_000), baselines).passed


def test_a_path_of_its_own_tolerance_is_held_to_it() -> None:
    baselines = InstructionBaselines(
        0.02, {"tuned sync": 200_000.0, "tuned poll": 300_000.0}, {"tuned poll": 0.05}
    )
    verdict = check_instructions(_run(tuned_sync=203_000, tuned_poll=312_000), baselines)
    assert verdict.passed
    assert [row.tolerance for row in verdict.rows] == [0.02, 0.05]
    assert not check_instructions(_run(tuned_sync=200_000, tuned_poll=318_000), baselines).passed


def test_writing_the_baselines_writes_what_was_counted(tmp_path: Path) -> None:
    target = tmp_path / "instructions.toml"
    write_baselines(
        _run(tuned_sync=201_234.4, tuned_finish=150_000), 0.02, target, {"tuned sync": 0.04}
    )
    assert load_baselines(target) == InstructionBaselines(
        0.02, {"tuned finish": 150_000, "tuned sync": 201_234}, {"tuned sync": 0.04}
    )
