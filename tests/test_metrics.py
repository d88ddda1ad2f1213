"""What /metrics reports for the requests an in-process app answers (one process: the default
registry; the multi-worker aggregation is tested over gunicorn in test_metrics_multiprocess)."""

import uuid
from collections.abc import Callable

import pytest
import redis
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from starlette.middleware.base import BaseHTTPMiddleware

from service.api.middleware.metrics import HTTPMetrics
from service.metrics import BUFFER
from service.storage.measured import MeasuredRedis
from tests.support.redis_commands import commands_seen

BODY = {"input": "some_input_data"}


def value(metric: str, **labels: str) -> float:
    BUFFER.flush()  # what a scrape would do first
    return REGISTRY.get_sample_value(metric, labels) or 0.0


def requests(route: str, method: str, status: int) -> float:
    return value("http_requests_total", route=route, method=method, status=str(status))


def test_metrics_are_prometheus_text(client: TestClient) -> None:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    names = {family.name for family in text_string_to_metric_families(response.text)}
    assert {
        "http_requests",
        "http_request_duration_seconds",
        "http_requests_in_flight",
        "prediction_model_info",
        "prediction_redis_round_trips",
    } <= names


def test_requests_are_labelled_by_route_template_not_path(client: TestClient) -> None:
    template = "/predict/{prediction_id}"
    before = requests(template, "GET", 404)
    for _ in range(3):
        assert client.get(f"/predict/{uuid.uuid4()}").status_code == 404
    assert requests(template, "GET", 404) == before + 3
    exposed = client.get("/metrics").text
    assert 'route="/predict/{prediction_id}"' in exposed
    assert "/predict/0" not in exposed.replace("/predict/{", "")


def test_paths_and_methods_outside_the_api_cannot_grow_the_label_set(client: TestClient) -> None:
    unrouted = requests("unrouted", "GET", 404)
    other = requests("/predict", "OTHER", 405)
    for i in range(5):
        client.get(f"/no/such/path/{i}")
        client.request(f"BREW{i}", "/predict")
    assert requests("unrouted", "GET", 404) == unrouted + 5
    assert requests("/predict", "OTHER", 405) == other + 5


def test_a_body_refused_before_routing_is_counted(client: TestClient) -> None:
    early = requests("unrouted", "POST", 413)
    late = requests("/predict", "POST", 413)
    big = b'{"input": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    assert client.post("/predict", content=big).status_code == 413

    def chunked() -> object:
        yield big  # no Content-Length: refused while reading, inside the route

    assert client.post("/predict", content=chunked()).status_code == 413  # type: ignore[arg-type]
    assert requests("unrouted", "POST", 413) == early + 1
    assert requests("/predict", "POST", 413) == late + 1


def test_latency_is_observed_once_per_request_and_in_flight_returns_to_zero(
    client: TestClient,
) -> None:
    count = "http_request_duration_seconds_count"
    before = value(count, route="/predict", method="POST")
    for _ in range(4):
        client.post("/predict", json=BODY)
    assert value(count, route="/predict", method="POST") == before + 4
    assert value("http_requests_in_flight") == 0


def test_an_unhandled_error_is_counted_as_500(make_client: Callable[..., TestClient]) -> None:
    client = make_client()
    model = client.app.state.services.model  # type: ignore[attr-defined]

    async def broken(inputs: object) -> list[str]:
        raise RuntimeError("a bug")

    model.predict_batch = broken
    before = requests("/predict", "POST", 500)
    client_no_raise = TestClient(client.app, raise_server_exceptions=False)
    assert client_no_raise.post("/predict", json=BODY).status_code == 500
    assert requests("/predict", "POST", 500) == before + 1
    assert value("http_requests_in_flight") == 0


def test_model_calls_are_timed_with_their_batch_size(client: TestClient) -> None:
    calls = value("prediction_model_seconds_count")
    inputs = value("prediction_batch_size_sum")
    client.post("/predict", json=BODY)
    assert value("prediction_model_seconds_count") == calls + 1
    assert value("prediction_batch_size_sum") == inputs + 1
    assert value("prediction_model_info", name="mock", version="1") == 1


def test_redis_round_trips_are_counted_without_adding_any(
    client: TestClient, redis_client: redis.Redis
) -> None:
    services = client.app.state.services  # type: ignore[attr-defined]
    assert isinstance(services.redis, MeasuredRedis)
    assert isinstance(services.store.redis, MeasuredRedis)  # the auto-pipelined client too
    client.post("/predict", json=BODY, headers={"async_mode": "true"})  # loads the script
    submits = value("prediction_redis_round_trips_total", operation="EVALSHA")
    polls = value("prediction_redis_round_trips_total", operation="HGETALL")
    redis_client.config_resetstat()
    location = client.post("/predict", json=BODY, headers={"async_mode": "true"}).headers[
        "location"
    ]
    client.get(location)
    client.post("/predict", json=BODY)
    # The submit is one script call, the poll one command, the sync prediction none.
    assert value("prediction_redis_round_trips_total", operation="EVALSHA") == submits + 1
    assert value("prediction_redis_round_trips_total", operation="HGETALL") == polls + 1
    assert value("prediction_redis_round_trip_seconds_count", operation="HGETALL") == polls + 1
    seen = commands_seen(redis_client)
    assert seen.pop("cmdstat_evalsha") == 1
    assert seen.pop("cmdstat_hgetall") == 1
    # What is left ran inside the script, in Redis, not over the network.
    assert set(seen) == {
        "cmdstat_get",
        "cmdstat_hset",
        "cmdstat_expire",
        "cmdstat_xadd",
        "cmdstat_incr",
        "cmdstat_exists",
    }


def test_the_instrumentation_is_pure_asgi(client: TestClient) -> None:
    stack = [middleware.cls for middleware in client.app.user_middleware]  # type: ignore[attr-defined]
    assert HTTPMetrics in stack
    assert not any(isinstance(cls, type) and issubclass(cls, BaseHTTPMiddleware) for cls in stack)


def test_metrics_can_be_turned_off(make_client: Callable[..., TestClient]) -> None:
    client = make_client(metrics_enabled=False)
    assert client.get("/metrics").status_code == 404
    services = client.app.state.services  # type: ignore[attr-defined]
    assert not isinstance(services.redis, MeasuredRedis)
    assert type(services.model).__name__ == "MockModel"
    before = requests("/predict", "POST", 200)
    assert client.post("/predict", json=BODY).status_code == 200
    assert requests("/predict", "POST", 200) == before


@pytest.mark.parametrize(
    "name",
    [
        "prediction_jobs_submitted_total",
        "prediction_jobs_reclaimed_total",
        "prediction_jobs_dead_lettered_total",
        "prediction_queue_backlog_jobs",
        "prediction_queue_oldest_job_age_seconds",
        "prediction_queue_wait_seconds_count",
        "prediction_time_to_result_seconds_count",
        "prediction_long_poll_waiters",
    ],
)
def test_queue_metrics_are_exported_before_the_queue_records_them(
    client: TestClient, name: str
) -> None:
    assert f"\n{name} " in client.get("/metrics").text
