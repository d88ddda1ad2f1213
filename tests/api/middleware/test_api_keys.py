import uuid
from collections.abc import Callable

import pytest
import redis
from fastapi.testclient import TestClient
from pydantic import ValidationError

from service.api.middleware.api_keys import key_id
from service.settings import Settings
from tests.support.http import ASYNC, BODY, KEY_A, KEY_B, bearer
from tests.support.redis_commands import commands_seen


@pytest.fixture
def secured(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client(api_keys=f"{KEY_A},{KEY_B}", worker_concurrency=0)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/predict"),
        ("GET", f"/predict/{uuid.uuid4()}"),
        ("GET", "/docs"),
        ("GET", "/openapi.json"),
        ("GET", "/nowhere"),
    ],
)
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-key-0123456789"},
        {"Authorization": f"Basic {KEY_A}"},
        {"Authorization": "Bearer"},
        {"X-API-Key": KEY_A[:-1]},
        {"X-API-Key": KEY_A + "x"},
    ],
)
def test_without_a_valid_key_every_endpoint_is_401(
    secured: TestClient,
    redis_client: redis.Redis,
    method: str,
    path: str,
    headers: dict[str, str],
) -> None:
    redis_client.config_resetstat()
    response = secured.request(method, path, json=BODY, headers={**ASYNC, **headers})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "API key" in response.json()["error"]
    assert commands_seen(redis_client) == {}, "a refused request must not reach Redis"


@pytest.mark.parametrize(
    "headers",
    [bearer(KEY_A), {"Authorization": f"bearer {KEY_B}"}, {"X-API-Key": KEY_A}],
)
def test_a_valid_key_in_either_header_is_accepted(
    secured: TestClient, headers: dict[str, str]
) -> None:
    assert secured.post("/predict", json=BODY, headers=headers).status_code == 200


def test_probes_need_no_key(secured: TestClient) -> None:
    assert secured.get("/healthz").status_code == 200
    assert secured.get("/readyz").status_code == 200


def test_metrics_need_a_key_only_behind_their_switch(
    make_client: Callable[..., TestClient],
) -> None:
    open_metrics = make_client(api_keys=KEY_A).get("/metrics")
    assert open_metrics.status_code == 200
    assert "http_requests_total" in open_metrics.text
    guarded = make_client(api_keys=KEY_A, metrics_require_key=True)
    assert guarded.get("/metrics").status_code == 401
    assert guarded.get("/metrics", headers=bearer(KEY_A)).status_code == 200


def test_another_keys_prediction_is_not_found(secured: TestClient) -> None:
    location = secured.post("/predict", json=BODY, headers={**ASYNC, **bearer(KEY_A)}).headers[
        "location"
    ]
    assert secured.get(location, headers=bearer(KEY_A)).status_code == 202
    foreign = secured.get(location, headers=bearer(KEY_B))
    unknown = secured.get(f"/predict/{uuid.uuid4()}", headers=bearer(KEY_B))
    assert foreign.status_code == unknown.status_code == 404
    assert foreign.content == unknown.content


def test_long_poll_on_another_keys_prediction_answers_404_without_waiting(
    make_client: Callable[..., TestClient],
) -> None:
    # No consumers, so the job never finishes: a long-poll that waited on it would run into
    # the test's timeout rather than answer.
    client = make_client(api_keys=f"{KEY_A},{KEY_B}", worker_concurrency=0, max_wait_s=3600)
    location = client.post("/predict", json=BODY, headers={**ASYNC, **bearer(KEY_A)}).headers[
        "location"
    ]
    assert client.get(f"{location}?wait=3600", headers=bearer(KEY_B)).status_code == 404


def test_a_key_sees_its_own_results(make_client: Callable[..., TestClient]) -> None:
    client = make_client(api_keys=KEY_A)
    location = client.post("/predict", json=BODY, headers={**ASYNC, **bearer(KEY_A)}).headers[
        "location"
    ]
    polled = client.get(f"{location}?wait=5", headers=bearer(KEY_A))
    assert polled.status_code == 200
    assert polled.json()["status"] == "succeeded"


def test_idempotency_keys_are_per_api_key(secured: TestClient) -> None:
    headers = {**ASYNC, "Idempotency-Key": "order-42"}
    first = secured.post("/predict", json=BODY, headers={**headers, **bearer(KEY_A)})
    replay = secured.post("/predict", json=BODY, headers={**headers, **bearer(KEY_A)})
    other = secured.post("/predict", json=BODY, headers={**headers, **bearer(KEY_B)})
    assert replay.json()["prediction_id"] == first.json()["prediction_id"]
    assert other.json()["prediction_id"] != first.json()["prediction_id"]
    assert "idempotent-replayed" not in other.headers


def test_the_owner_is_stored_as_a_key_id_never_the_key(
    secured: TestClient, redis_client: redis.Redis
) -> None:
    secured.post("/predict", json=BODY, headers={**ASYNC, **bearer(KEY_A)})
    [job_key] = redis_client.keys("pred:job:*")
    assert redis_client.hget(job_key, "owner") == key_id(KEY_A).encode()
    dump = b"".join(
        redis_client.dump(key) or b"" for key in redis_client.scan_iter()
    )  # every value, as Redis stores it
    assert KEY_A.encode() not in dump


def test_with_auth_on_submit_and_poll_stay_one_round_trip(
    secured: TestClient, redis_client: redis.Redis
) -> None:
    headers = {**ASYNC, **bearer(KEY_A)}
    secured.post("/predict", json=BODY, headers=headers)  # loads the script
    redis_client.config_resetstat()
    location = secured.post("/predict", json=BODY, headers=headers).headers["location"]
    assert commands_seen(redis_client)["cmdstat_evalsha"] == 1
    redis_client.config_resetstat()
    secured.get(location, headers=bearer(KEY_A))
    assert commands_seen(redis_client) == {"cmdstat_hgetall": 1}


def test_the_openapi_document_shows_the_keys(secured: TestClient) -> None:
    schema = secured.get("/openapi.json", headers=bearer(KEY_A)).json()
    assert set(schema["components"]["securitySchemes"]) == {"bearer", "apiKey"}
    assert "401" in schema["paths"]["/predict"]["post"]["responses"]
    assert "401" not in schema["paths"]["/healthz"]["get"]["responses"]


def test_without_keys_nothing_is_asked(client: TestClient) -> None:
    assert client.post("/predict", json=BODY).status_code == 200
    assert "securitySchemes" not in client.get("/openapi.json").json()["components"]


@pytest.mark.parametrize("keys", ["short", f"{KEY_A},has space 0123456789", "kéy-0123456789abcdef"])
def test_weak_or_odd_keys_stop_the_server(keys: str) -> None:
    with pytest.raises(ValidationError, match="API key"):
        Settings(api_keys=keys)
