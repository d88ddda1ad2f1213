"""Every panel of every dashboard, evaluated by a real Prometheus that scraped the served API
(two gunicorn workers) and a Locust run against it: a panel whose query is wrong returns no
data and fails.

Grafana does not run here, so its variables are replaced as Grafana would for a 1 s scrape.
"""

import math
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx2 as httpx
import pytest

from service.server.embedded_redis import EmbeddedRedis
from service.server.process import free_port
from tests.support.dashboards import Panel, panels
from tests.support.locust_runs import loadtest_env, make_command
from tests.support.prometheus import SCRAPE_INTERVAL_S, instant_values, prometheus, query_range
from tests.support.served import serve
from tests.support.tools import require
from tests.support.webhooks import local_env, receiver

pytestmark = [pytest.mark.served, pytest.mark.prometheus, pytest.mark.locust]

# Grafana's $__rate_interval for this scrape interval: four scrapes, so a rate always has
# at least two samples.
GRAFANA_VARIABLES = {"$__rate_interval": f"{4 * SCRAPE_INTERVAL_S}s"}

# Panels whose healthy value is 0 (the load below neither crashes a worker nor poisons a job):
# for them, a series of zeros is data. Every other panel must show a non-zero value.
ZERO_WHEN_HEALTHY = frozenset(
    {"Failure ratio of finished jobs", "Reclaimed jobs", "Dead-lettered jobs"}
)

BODY = {"input": "some_input_data"}
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"
LOAD_S = 5.0
MAX_REQUESTS_PER_THREAD = 400


class PanelHasNoDataError(AssertionError):
    """A panel whose queries ran but showed nothing."""


def grafana_expr(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"a Grafana variable the test does not know: {expr}"
    return expr


def panel_param(panel: Panel) -> object:
    return pytest.param(panel, id=f"{panel.dashboard}: {panel.title}")


@dataclass
class Scraped:
    prometheus: str
    start: float
    end: float


def drive_load(url: str, webhook: str, deadline: float) -> None:
    """Sync predictions, async submits (each with a webhook) and polls until the deadline,
    within a bounded count.

    `Prefer: wait` and `?wait=` are ignored by a service without long-poll and exercise it
    once the service has it.
    """
    with httpx.Client(base_url=url, timeout=10) as client:
        for _ in range(MAX_REQUESTS_PER_THREAD):
            if time.monotonic() > deadline:
                return
            client.post("/predict", json=BODY)
            accepted = client.post(
                "/predict",
                json={**BODY, "webhook": webhook},
                headers={"async_mode": "true", "Prefer": "wait=0"},
            )
            location = accepted.headers["location"]
            while client.get(location, params={"wait": "1"}).status_code == 202:
                time.sleep(0.05)
            client.get(f"/predict/{UNKNOWN_ID}")  # 404
            client.post("/predict", content=b"not json")  # 422


def follow_jobs(url: str, deadline: float) -> None:
    """Jobs followed to their end as Server-Sent Events, one after another until the deadline:
    a stream is open nearly all the time (the open-streams gauge)."""
    with httpx.Client(base_url=url, timeout=10) as client:
        for _ in range(MAX_REQUESTS_PER_THREAD):
            if time.monotonic() > deadline:
                return
            followed = client.post("/predict", json=BODY, headers={"async_mode": "true"})
            with client.stream("GET", f"{followed.headers['location']}/events") as events:
                assert events.status_code == 200
                for _ in events.iter_lines():
                    pass


def wait_for_scrape(prometheus_url: str, expr: str, minimum: float) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if any(value >= minimum for value in instant_values(prometheus_url, expr)):
            return
        time.sleep(SCRAPE_INTERVAL_S / 2)
    raise TimeoutError(f"Prometheus never saw {expr} >= {minimum}")


def answer_503s_until_rated(prometheus_url: str, service_url: str) -> None:
    """503s, a few per scrape, until Prometheus itself computes a rate of them over the panels'
    window, then two scrapes more. Counting what was sent is not enough: a counter's first
    sample is not an increase, a 5xx answered earlier (under load) may already have made the
    series, and a missed scrape leaves a window with one sample, so only Prometheus's own
    answer says that the error panels have their data."""
    expr = grafana_expr('sum(rate(http_requests_total{status=~"5.."}[$__rate_interval]))')
    deadline = time.monotonic() + 30
    rated_until: float | None = None
    while rated_until is None or time.monotonic() < rated_until:
        assert httpx.get(f"{service_url}/predict/{UNKNOWN_ID}").status_code == 503
        if rated_until is None:
            if any(value > 0 for value in instant_values(prometheus_url, expr)):
                rated_until = time.monotonic() + 2 * SCRAPE_INTERVAL_S
            elif time.monotonic() > deadline:
                raise TimeoutError(
                    f"Prometheus never saw {expr} > 0 while the service answered 503"
                )
        time.sleep(SCRAPE_INTERVAL_S / 4)


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scraped]:
    binary = require("prometheus", "prometheus")
    tmp = tmp_path_factory.mktemp("dashboards")
    redis = EmbeddedRedis(tmp / "redis", port=free_port(), appendonly=False)
    env = {
        "WEB_CONCURRENCY": "2",
        "MOCK_LATENCY_MS": "300",
        **local_env(),
    }
    (tmp / "prometheus").mkdir()
    locust_port = free_port()
    with (
        receiver() as webhooks,
        redis,
        serve({**env, "REDIS_URL": redis.url}, tmp) as served,
        prometheus(
            binary,
            {
                "prediction-service": f"127.0.0.1:{served.port}",
                "locust": f"127.0.0.1:{locust_port}",
            },
            tmp / "prometheus",
        ) as prom,
    ):
        # Prometheus applies discovered targets every few seconds: load starts once it scrapes.
        wait_for_scrape(prom, 'up{job="prediction-service"}', 1)
        start = time.time()
        deadline = time.monotonic() + LOAD_S
        locust = subprocess.Popen(
            make_command("loadtest"),
            env=loadtest_env(
                served.url,
                tmp / "reports",
                {
                    "SCENARIO": "sync",
                    "LOCUST_USERS": "2",
                    "LOCUST_RUN_TIME": f"{int(LOAD_S) + 5}s",
                    "LOADTEST_PROMETHEUS_PORT": str(locust_port),
                },
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            with ThreadPoolExecutor(5) as pool:
                loads = [
                    pool.submit(drive_load, served.url, webhooks.url, deadline) for _ in range(4)
                ]
                for done in [*loads, pool.submit(follow_jobs, served.url, deadline)]:
                    done.result()  # a load thread's error fails the set-up, not a panel
            # Locust's exporter lives as long as its run: Prometheus must have scraped it.
            wait_for_scrape(prom, "sum(locust_requests_total)", 1)
        finally:
            locust.wait(60)
        # Redis goes away: the endpoints that need it answer 503, for the error panels, until
        # every rate window closing now has its samples.
        redis.stop()
        answer_503s_until_rated(prom, served.url)
        yield Scraped(prom, start, time.time())


@pytest.mark.parametrize("panel", [panel_param(panel) for panel in panels()])
def test_panel_returns_data(scraped: Scraped, panel: Panel) -> None:
    for expr in panel.exprs:
        series = query_range(scraped.prometheus, grafana_expr(expr), scraped.start, scraped.end)
        values = [float(v) for s in series for _, v in s["values"]]
        shown = [v for v in values if not math.isnan(v)]
        if panel.title not in ZERO_WHEN_HEALTHY:
            shown = [v for v in shown if v != 0]
        if not shown:
            raise PanelHasNoDataError(f"no data for {expr!r} ({len(series)} series, NaN or 0)")
