"""The history of `make bench` runs, its chart in the report, and the files github-action-benchmark
reads, validated against the shape that action parses."""

import json
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import pytest

from bench import history
from bench.config import BenchConfig
from bench.history import HistoryEntry
from bench.report import render_html
from bench.results import InstructionCount, InstructionsRun, SideBySideRun
from tests.support.bench_results import full_run, ratios_of

DATA = Path(__file__).parent / "data"
SVG = "{http://www.w3.org/2000/svg}"
HOST = {"system": "Linux", "cpu": "a CPU", "cores": "2", "python": "3.11", "placement": "pinned"}


def run_with_counts() -> SideBySideRun:
    counted = InstructionsRun(
        {
            "tuned sync": InstructionCount.of(1000, 182_000_000),
            "tuned finish": InstructionCount.of(2000, 178_000_000),
        }
    )
    return replace(full_run(BenchConfig()), instructions=counted)


def entries(count: int, tmp_path: Path) -> list[HistoryEntry]:
    """`count` runs appended as `make bench` appends them, the sync ratio rising run by run."""
    target = tmp_path / "history.jsonl"
    start = datetime(2026, 12, 1, tzinfo=UTC)
    for i in range(count):
        results = replace(run_with_counts(), ratios=ratios_of(8.0 + i, 1.0 + i / 10))
        line = history.entry(results, f"{i:040x}", i == count - 1, start + timedelta(days=i), HOST)
        history.append(target, line)
    return history.load(target)


def test_a_run_appended_is_read_back_with_its_commit_machine_and_figures(tmp_path: Path) -> None:
    [first, last] = entries(2, tmp_path)
    assert first.commit == "0" * 40
    assert not first.dirty
    assert last.dirty
    assert last.label == "0000000+ 2026-12-02 00:00"
    assert first.date == "2026-12-01T00:00:00+00:00"
    assert first.machine == HOST
    assert first.ratios["sync rps"]["vs_seed"] == 8.0
    assert last.ratios["poll rps"]["vs_bound"] == pytest.approx(1.1)
    assert first.figures["tuned"]["sync rps"] > first.figures["seed"]["sync rps"]
    assert first.instructions == {"tuned sync": 182_000.0, "tuned finish": 89_000.0}
    assert first.time_to_result["tuned long-poll wait=2s"]["p99_ms"] == 100.0


def test_a_line_cut_short_by_a_killed_run_is_skipped(tmp_path: Path) -> None:
    entries(2, tmp_path)
    target = tmp_path / "history.jsonl"
    with target.open("ab") as f:
        f.write(b'{"commit": "abc", "dirty"')
    assert len(history.load(target)) == 2
    assert history.load(tmp_path / "none.jsonl") == []


def test_the_report_draws_each_ratio_over_three_runs(tmp_path: Path) -> None:
    runs = tuple(entries(3, tmp_path))
    html = render_html(run_with_counts(), None, runs)
    part = html.split("<h2>History</h2>")[1]
    # The report's own SVG, parsed to read its points.
    charts = [ET.fromstring(chunk[: chunk.index("</svg>") + 6])  # noqa: S314
              for chunk in ("<svg" + c for c in part.split("<svg")[1:])]  # fmt: skip
    assert len(charts) == 2  # vs seed, vs bound
    for chart in charts:
        lines = chart.findall(f"{SVG}polyline")
        assert len(lines) == 4  # one per figure
        for line in lines:
            assert len(line.attrib["points"].split()) == 3
        labels = [t.text for t in chart.findall(f"{SVG}text") if t.attrib.get("class") == "run"]
        assert labels == [e.label for e in runs]
    # The sync ratio to the seed rises run by run (8x, 9x, 10x): its line climbs (y falls).
    sync = next(
        line
        for line in charts[0].findall(f"{SVG}polyline")
        if line.attrib["data-series"] == "sync rps / seed"
    )
    ys = [float(point.split(",")[1]) for point in sync.attrib["points"].split()]
    assert ys == sorted(ys, reverse=True)
    assert ys[0] > ys[-1]


def test_one_run_gives_no_chart_and_says_why(tmp_path: Path) -> None:
    html = render_html(run_with_counts(), None, tuple(entries(1, tmp_path)))
    part = html.split("<h2>History</h2>")[1]
    assert "<svg" not in part
    assert "needs two" in part


def schema() -> dict[str, object]:
    loaded: dict[str, object] = json.loads(history.GITHUB_ACTION_BENCHMARK_SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(loaded)
    return loaded


def test_the_files_for_github_action_benchmark_match_the_shape_it_reads(tmp_path: Path) -> None:
    written = history.write_github_action_benchmark(tmp_path, run_with_counts())
    assert [p.name for p in written] == ["benchmark-bigger.json", "benchmark-smaller.json"]
    bigger = json.loads((tmp_path / "benchmark-bigger.json").read_text())
    smaller = json.loads((tmp_path / "benchmark-smaller.json").read_text())
    for document in (bigger, smaller):
        jsonschema.validate(document, schema(), cls=jsonschema.Draft202012Validator)
    by_name = {item["name"]: item for item in bigger}
    assert by_name["sync rps / seed"]["unit"] == "x"
    assert by_name["sync rps / seed"]["range"].count("-") == 1
    assert {item["name"] for item in smaller} >= {
        "tuned sync instructions",
        "tuned time to result long-poll wait=2s p99",
    }


@pytest.mark.parametrize(
    "example",
    [
        "github-action-benchmark-customBiggerIsBetter_output.json",
        "github-action-benchmark-customSmallerIsBetter_output.json",
    ],
)
def test_the_vendored_shape_accepts_the_actions_own_examples(example: str) -> None:
    jsonschema.validate(json.loads((DATA / example).read_text()), schema())


@pytest.mark.parametrize(
    "document",
    [
        [],  # the action throws on an empty list
        [{"name": "sync", "value": 1.0}],  # no unit
        [{"name": "sync", "value": "fast", "unit": "x"}],  # not a number
        [{"name": "sync", "value": 1.0, "unit": "x", "better": "bigger"}],  # a key it does not read
        [{"name": "sync", "value": 1.0, "unit": "x", "range": 0.1}],  # range is a string
        {"name": "sync", "value": 1.0, "unit": "x"},  # not a list
    ],
)
def test_the_vendored_shape_refuses_what_the_action_cannot_read(document: object) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, schema())
