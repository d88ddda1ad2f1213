from collections.abc import Callable

import pytest
import redis
from fastapi.testclient import TestClient

from tests.support.http import BODY, KEY_A, KEY_B, bearer
from tests.support.topologies import (
    commands_seen_everywhere,
    matching,
    reset_command_stats,
    unreachable_url,
)

pytestmark = pytest.mark.both_topologies

# One request per 1000 s refills: within a test, only the burst passes.
SLOW = {"rate_limit_per_s": 0.001, "rate_limit_burst": 3}


def test_past_the_burst_requests_get_429_with_retry_after(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(**SLOW)
    statuses = [client.post("/predict", json=BODY).status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    refused = client.post("/predict", json=BODY)
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 1000
    assert "Too many requests" in refused.json()["error"]


def test_each_key_has_its_own_budget(make_client: Callable[..., TestClient]) -> None:
    client = make_client(api_keys=f"{KEY_A},{KEY_B}", **SLOW)
    for _ in range(3):
        assert client.post("/predict", json=BODY, headers=bearer(KEY_A)).status_code == 200
    assert client.post("/predict", json=BODY, headers=bearer(KEY_A)).status_code == 429
    assert client.post("/predict", json=BODY, headers=bearer(KEY_B)).status_code == 200


def test_probes_are_not_limited(make_client: Callable[..., TestClient]) -> None:
    client = make_client(**SLOW)
    for _ in range(5):
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 200
    assert client.post("/predict", json=BODY).status_code == 200


def test_the_limit_costs_one_round_trip_and_nothing_when_off(
    make_client: Callable[..., TestClient], redis_client: redis.Redis
) -> None:
    limited = make_client(rate_limit_per_s=1000, worker_concurrency=0)
    limited.post("/predict", json=BODY)  # loads the script
    reset_command_stats(redis_client)
    assert limited.post("/predict", json=BODY).status_code == 200
    # The script's own commands are counted too; the script call is the one round trip.
    assert commands_seen_everywhere(redis_client) == {
        "cmdstat_evalsha": 1,
        "cmdstat_time": 1,
        "cmdstat_get": 1,
        "cmdstat_set": 1,
    }
    unlimited = make_client(worker_concurrency=0)
    reset_command_stats(redis_client)
    assert unlimited.post("/predict", json=BODY).status_code == 200
    assert commands_seen_everywhere(redis_client) == {}


def test_the_bucket_expires_once_full_again(
    make_client: Callable[..., TestClient], redis_client: redis.Redis
) -> None:
    make_client(rate_limit_per_s=0.001, rate_limit_burst=5).post("/predict", json=BODY)
    [bucket] = matching(redis_client, "pred:rate:*")
    assert bucket.startswith(b"pred:rate:addr:")
    # One request spent: the bucket is full again one interval (1000 s) later.
    assert 990_000 < redis_client.pttl(bucket) <= 1_000_000


def test_redis_down_with_the_limit_on_is_503(
    make_client: Callable[..., TestClient], topology: str
) -> None:
    client = make_client(
        redis_url=unreachable_url(topology),
        redis_socket_timeout_s=0.5,
        rate_limit_per_s=10,
    )
    response = client.post("/predict", json=BODY)
    assert response.status_code == 503
    assert response.json() == {"error": "Storage is unavailable; retry later."}
    assert "retry-after" in response.headers


@pytest.mark.parametrize("path", ["/predict", "/predict/{prediction_id}"])
def test_the_openapi_document_shows_the_429(
    make_client: Callable[..., TestClient], path: str
) -> None:
    schema = make_client(rate_limit_per_s=1000).get("/openapi.json").json()
    [operation] = schema["paths"][path].values()
    assert "429" in operation["responses"]
    assert "429" not in schema["paths"]["/healthz"]["get"]["responses"]
