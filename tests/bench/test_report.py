"""A real, short side-by-side run of the three builds, its report written as `make bench`
writes it, and the page checked the way a person sees it: in headless Chromium."""

import subprocess
from html import escape
from pathlib import Path

import orjson
import pytest

from bench.config import BenchConfig
from bench.figures import FIGURES
from bench.lineup import ORDER
from bench.placement import default_placement
from bench.report import write_report
from bench.results import SideBySideRun
from bench.run import side_by_side
from tests.support.tools import CHROMIUM_FLAGS, require

pytestmark = [pytest.mark.served, pytest.mark.wrk, pytest.mark.browser]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SideBySideRun]:
    require("wrk", "wrk")
    cfg = BenchConfig(duration=1, rounds=1)
    out = tmp_path_factory.mktemp("report")
    results = side_by_side(
        cfg, default_placement(), full=False, model_path=out / "unused", label="test"
    )
    return write_report(out, results, None), results


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    binary = require("chromium", "chromium")
    return subprocess.run(
        [binary, *CHROMIUM_FLAGS, *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_report_folder_holds_raw_results_and_one_page(
    report: tuple[Path, SideBySideRun],
) -> None:
    page, _ = report
    names = {p.name for p in page.parent.iterdir()}
    assert {"index.html", "results.json", "histograms"} <= names
    assert len(list((page.parent / "histograms").glob("*.csv"))) == 3 * len(ORDER)


def test_results_json_holds_the_run(report: tuple[Path, SideBySideRun]) -> None:
    page, results = report
    written = orjson.loads((page.parent / "results.json").read_bytes())
    for build in ORDER:
        measured = results.builds[build]
        assert written["builds"][build]["sync"]["rps"] == measured.sync.rps
        assert written["builds"][build]["sync"]["p99_ms"] == measured.sync.p99_ms
        assert written["builds"][build]["async_jobs"]["finished_per_s"] == (
            measured.async_jobs.finished_per_s
        )
        assert len(written["builds"][build]["rounds"]["poll"]) == 1
    for figure in FIGURES:
        assert written["ratios"][figure]["vs_bound"] == results.ratios[figure].vs_bound
    assert [bar["verdict"] for bar in written["bars"]] == [bar.verdict for bar in results.bars]
    assert written["meta"]["config"]["duration"] == 1
    assert written["meta"]["command"] == "make gate"
    assert written["scaling"] is None  # a gate run's


def test_page_is_self_contained(report: tuple[Path, SideBySideRun]) -> None:
    html = report[0].read_text()
    assert "<script" not in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in html


def test_chromium_shows_the_three_builds_side_by_side(
    report: tuple[Path, SideBySideRun],
) -> None:
    page, results = report
    dumped = chromium("--dump-dom", page.as_uri())
    assert dumped.returncode == 0, dumped.stderr
    dom = dumped.stdout
    header = dom.split('<table class="side-by-side">')[1].split("</thead>")[0]
    assert [b for b in ORDER if f"<th>{b}</th>" in header] == list(ORDER)
    for build in ORDER:
        sync = f"{results.builds[build].sync.rps:,.0f}"
        assert f'<span data-build="{build}">{sync}</span>' in dom
        assert dom.count(f'class="bar" data-build="{build}"') >= len(FIGURES)
    for figure in FIGURES:
        ratio = results.ratios[figure].vs_seed
        assert f"{ratio:,.2f}x" in dom


def test_chromium_shows_the_bars_first(report: tuple[Path, SideBySideRun]) -> None:
    page, results = report
    dumped = chromium("--dump-dom", page.as_uri())
    assert dumped.returncode == 0, dumped.stderr
    dom = dumped.stdout
    assert dom.index('<table class="bars">') < dom.index('<table class="side-by-side">')
    bars = dom.split('<table class="bars">')[1].split("</table>")[0]
    for bar in results.bars:
        assert f"<td>{escape(bar.name, quote=False)}</td>" in bars
        assert f"<td>{escape(bar.verdict, quote=False)}</td>" in bars
    assert "not measured" in bars  # a gate run has no scaling or fixed-rate scenario


def test_chromium_renders_the_page(report: tuple[Path, SideBySideRun], tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    done = chromium(f"--screenshot={shot}", "--window-size=1280,2400", report[0].as_uri())
    assert done.returncode == 0, done.stderr
    assert shot.read_bytes().startswith(b"\x89PNG")
    assert shot.stat().st_size > 20_000  # a blank page is a few kB
