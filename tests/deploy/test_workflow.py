"""The GitHub Actions workflow that runs the gate, validated offline by real tools."""

import subprocess
import sys
from pathlib import Path

from ruamel.yaml import YAML

from tests.support.paths import ROOT

BIN = Path(sys.executable).parent
WORKFLOW = ".github/workflows/bench-gate.yml"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=False)


def test_workflow_matches_the_github_workflows_schema() -> None:
    result = run(
        str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", WORKFLOW
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflow_passes_actionlint() -> None:
    result = run(str(BIN / "actionlint"), "-no-color", WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflow_runs_the_gate_on_pull_requests_and_uploads_the_report() -> None:
    workflow = YAML(typ="safe").load(ROOT / WORKFLOW)
    assert "pull_request" in workflow["on"]
    steps = workflow["jobs"]["gate"]["steps"]
    assert any("bash .ci/run" in step.get("run", "") for step in steps)
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["with"]["path"] == "reports/"
    assert upload["if"] == "always()"


def test_pull_requests_are_compared_with_their_base_and_the_table_is_the_summary() -> None:
    workflow = YAML(typ="safe").load(ROOT / WORKFLOW)
    job = workflow["jobs"]["compare"]
    assert job["if"] == "github.event_name == 'pull_request'"
    checkout = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/checkout"))
    assert checkout["with"]["fetch-depth"] == 0  # the base branch's history, for git archive
    compare = next(s for s in job["steps"] if "make bench-compare" in s.get("run", ""))
    assert 'BASE="origin/${BASE_REF}"' in compare["run"]
    assert compare["env"]["BASE_REF"] == "${{ github.base_ref }}"
    summary = next(s for s in job["steps"] if "GITHUB_STEP_SUMMARY" in s.get("run", ""))
    assert "compare.md" in summary["run"]
    assert summary["if"] == "always()"
