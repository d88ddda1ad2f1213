"""/metrics under gunicorn with two workers: whichever worker answers a scrape reports every
worker's values, and a worker that dies leaves its counters but not its live gauges."""

import contextlib
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2 as httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from service.metrics import FLUSH_EVERY_S
from service.server.embedded_redis import EmbeddedRedis
from service.server.process import ServerProcess
from tests.support.metrics import scraped_total
from tests.support.served import serve

pytestmark = pytest.mark.served

BODY = {"input": "some_input_data"}
PREDICT_OK = {"route": "/predict", "method": "POST", "status": "200"}


# A new connection per request, so that either worker may answer any of them.
fresh = httpx.Client(limits=httpx.Limits(max_keepalive_connections=0))


def scrape(served: ServerProcess, name: str) -> list[Sample]:
    text = fresh.get(f"{served.url}/metrics").text
    return [
        sample
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


def per_worker(directory: Path, kind: str, name: str, labels: dict[str, str]) -> dict[int, float]:
    """Each worker's own value, read from its own file (`kind`: counter, gauge_livesum...)."""
    values: dict[int, float] = {}
    for path in directory.glob(f"{kind}_*.db"):
        pid = int(path.stem.rsplit("_", 1)[1])
        values[pid] = sum(
            sample.value
            for metric in MultiProcessCollector.merge([str(path)])  # type: ignore[no-untyped-call]
            for sample in metric.samples
            if sample.name == name and sample.labels.items() >= labels.items()
        )
    return values


def flushed(directory: Path, sent: int) -> dict[int, float]:
    """Each worker's count of sync predictions, once every worker's buffer has reached its
    file (a worker writes its metrics every FLUSH_EVERY_S)."""
    deadline = time.monotonic() + 5 * FLUSH_EVERY_S
    while True:
        counts = per_worker(directory, "counter", "http_requests_total", PREDICT_OK)
        if sum(counts.values()) >= sent or time.monotonic() > deadline:
            return counts
        time.sleep(FLUSH_EVERY_S / 10)


def live_worker_pids(served: ServerProcess) -> set[int]:
    return {int(s.labels["pid"]) for s in scrape(served, "prediction_process_start_time_seconds")}


def test_two_workers_report_the_same_total_whichever_answers(
    tmp_path: Path, redis_server: EmbeddedRedis
) -> None:
    env = {"REDIS_URL": redis_server.url, "WEB_CONCURRENCY": "2"}
    with serve(env, tmp_path) as served, ThreadPoolExecutor(8) as pool:
        # Without PROMETHEUS_MULTIPROC_DIR, gunicorn.conf.py makes one under DATA_DIR.
        metrics_dir = tmp_path / "data" / f"metrics-{served.port}"

        def predict(_: int) -> int:
            return fresh.post(f"{served.url}/predict", json=BODY).status_code

        sent = 0
        counts: dict[int, float] = {}
        # New connections from 8 threads spread over both workers; send until both have
        # answered some (bounded), so that the totals below really add two workers up.
        while sent < 1000 and len([c for c in counts.values() if c > 0]) < 2:
            assert set(pool.map(predict, range(50))) == {200}
            sent += 50
            counts = flushed(metrics_dir, sent)
        assert len(counts) == 2
        assert min(counts.values()) > 0, counts
        assert sum(counts.values()) == sent

        for _ in range(10):
            assert scraped_total(served.url, "http_requests_total", PREDICT_OK) == sent
            assert live_worker_pids(served) == set(counts)


def test_a_killed_worker_keeps_its_counts_and_drops_its_in_flight_requests(
    tmp_path: Path, redis_server: EmbeddedRedis
) -> None:
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    # Left by an earlier run: the server must not add it to this run's values.
    (metrics_dir / "counter_1.db").write_bytes(b"not this run's")
    env = {
        "REDIS_URL": redis_server.url,
        "WEB_CONCURRENCY": "2",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        # Requests that stay in flight until the server stops.
        "MOCK_LATENCY_MS": "600000",
        "GRACEFUL_TIMEOUT_S": "1",
    }
    hanging = 6

    def hang(url: str) -> None:
        with contextlib.suppress(httpx.TransportError):  # its worker is killed, or stopped
            httpx.post(f"{url}/predict", json=BODY, timeout=60)

    with serve(env, tmp_path) as served:
        assert not (metrics_dir / "counter_1.db").exists()
        threads = [threading.Thread(target=hang, args=(served.url,)) for _ in range(hanging)]
        for thread in threads:
            thread.start()
        in_flight: dict[int, float] = {}
        deadline = time.monotonic() + 30
        while sum(in_flight.values()) < hanging:
            assert time.monotonic() < deadline, in_flight
            time.sleep(0.05)
            in_flight = per_worker(metrics_dir, "gauge_livesum", "http_requests_in_flight", {})
        victim = max(in_flight, key=lambda pid: in_flight[pid])
        answered = scraped_total(served.url, "http_requests_total", {})

        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while len(pids := live_worker_pids(served)) != 2 or victim in pids:
            assert time.monotonic() < deadline, pids
            time.sleep(0.05)

        # The victim's in-flight requests are gone with it; the survivor's are still there,
        # plus this scrape's own request.
        [scraped_in_flight] = scrape(served, "http_requests_in_flight")
        assert scraped_in_flight.value == hanging - in_flight[victim] + 1
        # Its counters are kept: totals never go backwards when a worker dies.
        assert (metrics_dir / f"counter_{victim}.db").exists()
        assert scraped_total(served.url, "http_requests_total", {}) > answered
    for thread in threads:
        thread.join(timeout=30)
