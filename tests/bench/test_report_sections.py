"""The report's sections and printed table, from made-up results: every scenario of a full run
shows, and a gate run says which it did not measure."""

import re
from dataclasses import replace
from pathlib import Path

import orjson
import pytest

from bench.config import BenchConfig
from bench.gate import check
from bench.lineup import ORDER
from bench.report import print_table, render_html, write_report
from bench.results import MicroBenchmark, TimeToResult
from tests.support.bench_results import build_figures, full_run

SECTIONS = (
    "Throughput vs concurrency",
    "Latency at a fixed rate (open loop)",
    "Scaling with 2 workers",
    "Time to result by strategy",
    "Redis work per API request",
    "Model emulation and the real model",
    "Micro-benchmarks",
)


def section(html: str, title: str) -> str:
    return html.split(f"<h2>{title}</h2>")[1].split("<h2>")[0]


def test_a_full_run_shows_every_section() -> None:
    micro = (MicroBenchmark("serialization", "test_orjson", 2e-6, 500_000.0),)
    html = render_html(full_run(BenchConfig()), micro)
    for title in SECTIONS:
        assert "Not part of this run" not in section(html, title), title
    assert 'class="knee"' in section(html, "Throughput vs concurrency")
    assert "tuned (own knee)" in section(html, "Latency at a fixed rate (open loop)")
    ttr = section(html, "Time to result by strategy")
    assert ttr.count("not supported (answers at once, ignores wait)") == 2  # seed and bound
    assert "1 round trips (hset 1)" in section(html, "Redis work per API request")
    assert "<td>MOCK_CPU_MS=1</td>" in section(html, "Model emulation and the real model")
    assert "<td>test_orjson</td><td>2.00</td>" in section(html, "Micro-benchmarks")


def test_event_streams_and_webhooks_show_beside_the_polls() -> None:
    made_up = full_run(BenchConfig())
    builds = {
        name: replace(
            figures,
            time_to_result=(
                TimeToResult(
                    "SSE events", 80, 80, name == "tuned", 52.0, 53, 54.0, 1.0, 0.1, 3, "sse"
                ),
                TimeToResult(
                    "webhook", 80, 80, name == "tuned", 55.0, 56, 58.0, 1.0, 0.1, 3, "webhook"
                ),
            ),
        )
        for name, figures in made_up.builds.items()
    }
    ttr = section(render_html(replace(made_up, builds=builds), None), "Time to result by strategy")
    assert "52.0 / 54.0 ms, 1.0 event streams" in ttr
    assert "55.0 / 58.0 ms, 1.0 deliveries" in ttr
    assert ttr.count("not supported (no event stream)") == 2  # seed and bound
    assert ttr.count("not supported (delivers no webhook)") == 2


def test_a_gate_run_says_what_it_did_not_measure() -> None:
    made_up = full_run(BenchConfig())
    builds = {name: build_figures(1000.0) for name in ORDER}
    gate_run = replace(made_up, builds=builds, fixed_rate=None, scaling=None)
    gate_run = replace(gate_run, gate=check(gate_run.ratios, {"sync rps": 9.0}))
    html = render_html(gate_run, None)
    for title in SECTIONS:
        assert section(html, title).startswith("<p>Not part of this run.</p>"), title
    assert "<h2>CI gate: FAILED</h2>" in html


def test_the_printed_table_has_every_scenario(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    print_table(full_run(BenchConfig()), tmp_path)
    printed = capsys.readouterr().out
    assert re.search(r"^sync rps +20,000 +4,000 +30,000 +5\.00x +0\.67x$", printed, re.M)
    assert "knee (p99 <= 25 ms):  tuned 20,000 rps @ 16; seed 4,000 rps @ 16" in printed
    assert "long-poll wait=2s      tuned 60/100 (2.0); seed not supported" in printed
    assert "fixed rate 2,800 rps, p50/p99 ms: tuned 1.0/2.0" in printed
    assert "fixed rate 14,000 rps (tuned's own knee), tuned p50/p99 ms: 2.0/4.0" in printed
    assert "scaling tuned    20,000 ->   36,000 rps (1.80x" in printed


def test_the_folder_holds_the_results_and_a_histogram_per_build_and_scenario(
    tmp_path: Path,
) -> None:
    made_up = full_run(BenchConfig())
    write_report(tmp_path, made_up, None)
    written = orjson.loads((tmp_path / "results.json").read_bytes())
    assert written["fixed_rate"]["tuned_own_load"]["rate"] == 14000.0
    assert written["builds"]["seed"]["time_to_result"][1]["supported"] is False
    assert written["meta"]["config"]["sweep"] == list(BenchConfig().sweep)
    csv = (tmp_path / "histograms" / "bound-async.csv").read_text().splitlines()
    assert csv[0] == "percentile,latency_ms"
    assert len(csv) == 1 + len(made_up.builds["bound"].async_jobs.submits.latency_cdf_ms)
