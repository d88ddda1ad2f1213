"""A real Prometheus server for the tests: our scrape config and alert rules, pointed at a
served API on a free port, with its own data in a temporary directory."""

import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2 as httpx
from ruamel.yaml import YAML

from service.server.process import free_port, stop
from tests.support.paths import ROOT

CONFIG_DIR = ROOT / "dashboards" / "prometheus"
SCRAPE_INTERVAL_S = 1


def config_for(targets: Mapping[str, str]) -> dict[str, Any]:
    """The repository's prometheus.yml, its jobs pointed at `targets` (job name to address)
    and scraped every second; a job without a target here is left out."""
    yaml = YAML(typ="safe")
    config: dict[str, Any] = yaml.load(CONFIG_DIR / "prometheus.yml")
    config["global"]["scrape_interval"] = f"{SCRAPE_INTERVAL_S}s"
    config["global"]["evaluation_interval"] = f"{SCRAPE_INTERVAL_S}s"
    config["rule_files"] = [str(CONFIG_DIR / name) for name in config["rule_files"]]
    jobs = [job for job in config["scrape_configs"] if job["job_name"] in targets]
    for job in jobs:
        job["static_configs"] = [{"targets": [targets[job["job_name"]]]}]
    config["scrape_configs"] = jobs
    return config


@contextmanager
def prometheus(
    binary: str, targets: Mapping[str, str], tmp: Path, timeout_s: float = 60
) -> Iterator[str]:
    config = tmp / "prometheus.yml"
    with config.open("w") as out:
        YAML(typ="safe").dump(config_for(targets), out)
    port = free_port()
    log = tmp / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"prometheus exited with {process.returncode}:\n{log.read_text()}"
                )
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"prometheus not ready within {timeout_s}s:\n{log.read_text()}")
            time.sleep(0.1)
        yield url
    finally:
        stop(process)


def query_range(url: str, expr: str, start: float, end: float) -> list[dict[str, Any]]:
    """The series a range query returns, one step per scrape; a bad query is an AssertionError."""
    response = httpx.get(
        f"{url}/api/v1/query_range",
        params={"query": expr, "start": start, "end": end, "step": SCRAPE_INTERVAL_S},
    )
    body = response.json()
    assert body["status"] == "success", f"{expr}: {body.get('error')}"
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def instant_values(url: str, expr: str) -> list[float]:
    """The values an instant query returns now, one per series."""
    body = httpx.get(f"{url}/api/v1/query", params={"query": expr}).json()
    return [float(value) for _, value in (r["value"] for r in body["data"]["result"])]
