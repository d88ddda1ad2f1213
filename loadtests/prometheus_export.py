"""Locust's own figures for Prometheus, so that one dashboard shows the load next to the
service: `LOADTEST_PROMETHEUS_PORT=9646` (off by default).

A collector reads the runner's statistics when it is scraped, so nothing is added to the path
of a request. In distributed mode only the master serves them: it aggregates the workers'
reports, and the workers' own statistics are partial.
"""

from collections.abc import Iterator
from typing import Any

from locust import events
from locust.env import Environment
from locust.runners import WorkerRunner
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

_QUANTILES = (0.5, 0.95, 0.99)


class LocustCollector:
    def __init__(self, environment: Environment) -> None:
        self.environment = environment

    def collect(self) -> Iterator[Metric]:
        runner = self.environment.runner
        if runner is None:
            return
        yield GaugeMetricFamily(
            "locust_users", "Simulated users running now.", value=runner.user_count
        )
        labels = ["method", "name"]
        requests = CounterMetricFamily(
            "locust_requests", "Requests the load generator sent, by entry.", labels=labels
        )
        failures = CounterMetricFamily(
            "locust_request_failures", "Requests Locust counted as failed.", labels=labels
        )
        latency = GaugeMetricFamily(
            "locust_response_time_seconds",
            "Locust's response-time percentiles since the run started (closed loop: from send).",
            labels=[*labels, "quantile"],
        )
        for entry in runner.stats.entries.values():
            key = [str(entry.method), entry.name]
            requests.add_metric(key, entry.num_requests)
            failures.add_metric(key, entry.num_failures)
            if entry.num_requests:
                for quantile in _QUANTILES:
                    milliseconds = entry.get_response_time_percentile(quantile)
                    latency.add_metric([*key, str(quantile)], milliseconds / 1000)
        yield from (requests, failures, latency)


@events.init.add_listener
def _serve(environment: Environment, **_: Any) -> None:
    options = environment.parsed_options
    port = getattr(options, "prometheus_port", 0) if options is not None else 0
    if options is None or not port or isinstance(environment.runner, WorkerRunner):
        return
    # Its own registry: the default one may be in multiprocess mode when the variable is set
    # for a service started alongside.
    registry = CollectorRegistry(auto_describe=True)
    registry.register(LocustCollector(environment))
    start_http_server(port, addr=options.prometheus_host, registry=registry)
