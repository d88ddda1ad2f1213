"""`make locust` in a real browser: start a swarm from Locust's web UI and see requests counted.

With TARGET_URL unset and nothing on PORT, `make locust` starts the service itself (on the
embedded Redis), which this test relies on and checks.
"""

import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx2 as httpx
import pytest

from service.server.process import free_port, stop
from tests.support.locust_runs import make_command
from tests.support.tools import CHROMIUM_FLAGS

pytestmark = [pytest.mark.served, pytest.mark.locust, pytest.mark.browser]


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        reason = "Debian's chromium is not installed (.ci/run installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


def wait_for_ui(url: str, process: subprocess.Popen[bytes], log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError(log.read_text())


def test_swarm_started_from_the_web_ui_counts_requests(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    executable = chromium()
    service_port, web_port = free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("TARGET_URL", "REDIS_URL")},
        "PORT": str(service_port),
        "WEB_CONCURRENCY": "1",
        "DATA_DIR": str(tmp_path / "data"),
        "REPORTS_DIR": str(tmp_path / "reports"),
        "LOCUST_WEB_PORT": str(web_port),
        "SCENARIO": "sync",
    }
    log = tmp_path / "locust.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            make_command("locust"),
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        ui = f"http://127.0.0.1:{web_port}/"
        wait_for_ui(ui, process, log, timeout_s=90)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
            page = browser.new_page()
            page.goto(ui)
            assert page.input_value("input[name=host]") == f"http://127.0.0.1:{service_port}"
            page.fill("input[name=userCount]", "3")
            page.fill("input[name=spawnRate]", "3")
            page.click("button[type=submit]")
            row = page.locator("tr", has_text="sync /predict")
            row.wait_for(timeout=30_000)
            deadline = time.monotonic() + 30
            while int(row.locator("td").nth(2).inner_text()) == 0:
                assert time.monotonic() < deadline, "no request was counted"
                page.wait_for_timeout(200)
            cells = row.locator("td").all_inner_texts()
            browser.close()
        assert int(cells[2]) > 0  # requests
        assert int(cells[3]) == 0  # failures: every answer had the right body
    finally:
        stop(process)
    output = log.read_text()
    assert "event=service_started" in output
    # The service `make locust` started for the run was stopped with it.
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{service_port}/healthz", timeout=1)
