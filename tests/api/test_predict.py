import time
import uuid
from collections.abc import Callable

import pytest
import redis
from fastapi.testclient import TestClient

from service.jobs.status import JobStatus
from service.storage.keys import Keys
from tests.support.apps import FailingModel, in_app, services_of
from tests.support.http import BODY
from tests.support.topologies import (
    commands_seen_everywhere,
    job_keys,
    key_count,
    matching,
    reset_command_stats,
    unreachable_url,
)

pytestmark = pytest.mark.both_topologies


def test_sync_predict_answers_the_seed_body(client: TestClient) -> None:
    response = client.post("/predict", json=BODY)
    assert response.status_code == 200
    body = response.json()
    assert body["input"] == "some_input_data"
    assert body["result"].isdigit()
    assert 0 <= int(body["result"]) < 10000


def test_sync_predict_makes_no_redis_round_trip(
    client: TestClient, redis_client: redis.Redis
) -> None:
    reset_command_stats(redis_client)
    assert client.post("/predict", json=BODY).status_code == 200
    assert commands_seen_everywhere(redis_client) == {}


@pytest.mark.parametrize(
    "header",
    [
        ("async_mode", "true"),
        ("Async-Mode", "true"),
        ("async_mode", "TRUE"),
        ("ASYNC-MODE", "True"),
    ],
)
def test_async_mode_accepts_both_spellings(client: TestClient, header: tuple[str, str]) -> None:
    response = client.post("/predict", json=BODY, headers=dict([header]))
    assert response.status_code == 202
    prediction_id = response.json()["prediction_id"]
    assert uuid.UUID(prediction_id).version == 4
    assert response.headers["location"] == f"/predict/{prediction_id}"


@pytest.mark.parametrize("value", ["false", "0", "no"])
def test_async_mode_false_is_sync(client: TestClient, value: str) -> None:
    response = client.post("/predict", json=BODY, headers={"async_mode": value})
    assert response.status_code == 200
    assert set(response.json()) == {"input", "result"}


def test_async_mode_nonsense_is_422(client: TestClient) -> None:
    response = client.post("/predict", json=BODY, headers={"async_mode": "maybe"})
    assert response.status_code == 422
    assert "async_mode" in response.json()["error"]


@pytest.mark.parametrize("backend", ["stream", "background"])
def test_async_then_poll_returns_the_result(
    make_client: Callable[..., TestClient], topology: str, backend: str
) -> None:
    client = make_client(async_backend=backend)
    accepted = client.post("/predict", json=BODY, headers={"async_mode": "true"})
    polled = client.get(accepted.headers["location"] + "?wait=5")
    assert polled.status_code == 200
    body = polled.json()
    assert body["input"] == "some_input_data"
    assert body["result"].isdigit()
    assert body["status"] == "succeeded"
    assert body["prediction_id"] == accepted.json()["prediction_id"]
    assert body["finished_at"] >= body["created_at"]


# Commands a Lua script runs are counted by Redis too; only the script call is a round trip.
_SUBMIT_SCRIPT_COMMANDS = {
    "cmdstat_get",
    "cmdstat_hset",
    "cmdstat_expire",
    "cmdstat_xadd",
    "cmdstat_incr",
    "cmdstat_exists",
}


@pytest.mark.parametrize("backend", ["stream", "background"])
def test_async_submit_is_one_round_trip(
    make_client: Callable[..., TestClient], redis_client: redis.Redis, topology: str, backend: str
) -> None:
    # No in-process consumers, so that every command seen is the request's own.
    client = make_client(async_backend=backend, worker_concurrency=0)
    client.post("/predict", json=BODY, headers={"async_mode": "true"})  # loads the script
    reset_command_stats(redis_client)
    client.post("/predict", json=BODY, headers={"async_mode": "true"})
    seen = commands_seen_everywhere(redis_client)
    if backend == "stream":
        assert seen.pop("cmdstat_evalsha") == 1
        assert set(seen) == _SUBMIT_SCRIPT_COMMANDS
    else:
        # The seed's background task then writes the result: a second trip (a second script,
        # which keeps a canceled job canceled), after the 202.
        assert seen.pop("cmdstat_evalsha") == 2
        assert set(seen) <= _SUBMIT_SCRIPT_COMMANDS | {"cmdstat_hget", "cmdstat_publish"}


def test_poll_is_one_command(
    make_client: Callable[..., TestClient], redis_client: redis.Redis
) -> None:
    client = make_client(worker_concurrency=0)
    prediction_id = client.post("/predict", json=BODY, headers={"async_mode": "true"}).json()[
        "prediction_id"
    ]
    reset_command_stats(redis_client)
    assert client.get(f"/predict/{prediction_id}").status_code == 202
    assert commands_seen_everywhere(redis_client) == {"cmdstat_hgetall": 1}


def test_still_processing_body_and_retry_after(
    client: TestClient, redis_client: redis.Redis
) -> None:
    store = services_of(client).store
    job_id = store.keys.new_job_id(store.keys.shard_for())
    in_app(client, lambda: store.submit(job_id, b'"x"', enqueue=False))
    response = client.get(f"/predict/{job_id}")
    assert response.status_code == 202
    assert response.json()["error"] == "Prediction is still being processed."
    assert response.json()["status"] == "queued"
    assert int(response.headers["retry-after"]) >= 1


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (JobStatus.FAILED, "Prediction failed."),
        (JobStatus.EXPIRED, "Prediction expired before it could run."),
    ],
)
def test_unsuccessful_jobs_say_why(
    client: TestClient, redis_client: redis.Redis, keys: Keys, status: JobStatus, message: str
) -> None:
    store = services_of(client).store
    job_id = store.keys.new_job_id(store.keys.shard_for())
    in_app(client, lambda: store.submit(job_id, b'"x"', enqueue=False))
    # Made final as a consumer's finish would (`store.finish` is the background backend's, which
    # a Cluster refuses).
    redis_client.hset(
        keys.job(job_id),
        mapping={"status": status.value, "error": "ValueError", "finished_at": time.time()},
    )
    response = client.get(f"/predict/{job_id}")
    assert response.status_code == 200
    assert response.json() == {
        "error": message,
        "prediction_id": str(job_id),
        "status": status.value,
        "reason": "ValueError",
    }


@pytest.mark.single_topology  # a Cluster refuses ASYNC_BACKEND=background
def test_model_error_in_background_marks_failed(make_client: Callable[..., TestClient]) -> None:
    client = make_client(FailingModel(), async_backend="background")
    accepted = client.post("/predict", json=BODY, headers={"async_mode": "true"})
    body = client.get(accepted.headers["location"]).json()
    assert body["status"] == "failed"
    assert body["reason"] == "RuntimeError"


def test_unknown_id_is_404_with_the_seed_message(client: TestClient) -> None:
    response = client.get(f"/predict/{uuid.uuid4()}")
    assert response.status_code == 404
    assert response.json() == {"error": "Prediction ID not found."}


@pytest.mark.parametrize(
    "hostile",
    ["not-a-uuid", "pred:job:*", "*", "1234", "%2A", "..%2F..%2Fetc", "a" * 300, "' OR 1=1"],
)
def test_hostile_ids_are_refused_without_touching_redis(
    client: TestClient, redis_client: redis.Redis, hostile: str
) -> None:
    reset_command_stats(redis_client)
    response = client.get(f"/predict/{hostile}")
    assert response.status_code in (404, 422)
    assert commands_seen_everywhere(redis_client) == {}


def test_ttl_is_set_on_submit_and_on_finish(
    make_client: Callable[..., TestClient], redis_client: redis.Redis, keys: Keys
) -> None:
    client = make_client(result_ttl_s=30)
    prediction_id = client.post("/predict", json=BODY, headers={"async_mode": "true"}).json()[
        "prediction_id"
    ]
    assert client.get(f"/predict/{prediction_id}?wait=5").status_code == 200
    [key] = job_keys(redis_client)
    assert key == keys.job(prediction_id).encode()
    assert 0 < redis_client.ttl(key) <= 30
    stored = redis_client.hgetall(key)
    assert {b"status", b"input", b"result", b"created_at", b"finished_at"} <= set(stored)


def test_result_expires_after_ttl(
    make_client: Callable[..., TestClient], redis_client: redis.Redis, keys: Keys
) -> None:
    client = make_client(result_ttl_s=1)
    accepted = client.post("/predict", json=BODY, headers={"async_mode": "true"})
    location = accepted.headers["location"]
    assert client.get(location + "?wait=5").status_code == 200
    # The TTL is Redis's: shorten it.
    redis_client.pexpire(keys.job(accepted.json()["prediction_id"]), 1)
    time.sleep(0.05)
    assert client.get(location).status_code == 404


def test_key_prefix_is_configurable(
    make_client: Callable[..., TestClient], redis_client: redis.Redis, keys: Keys
) -> None:
    client = make_client(key_prefix="other:")
    accepted = client.post("/predict", json=BODY, headers={"async_mode": "true"})
    assert client.get(accepted.headers["location"] + "?wait=5").status_code == 200
    assert matching(redis_client, "pred:*") == set()
    other = Keys("other:", shards=len(keys.shards), tagged=keys.tagged)
    assert matching(redis_client, "other:*job:*") == {
        other.job(accepted.json()["prediction_id"]).encode()
    }
    shard = other.shard_of(accepted.json()["prediction_id"])
    assert shard is not None
    assert redis_client.exists(shard.stream, shard.backlog, shard.completed) == 3


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"not json", "Invalid JSON"),
        (b"{}", "body.input: Field required"),
        (b'{"input": 5}', "body.input: Input should be a valid string"),
        (b'{"input": null}', "body.input"),
        (b"[1, 2]", "body"),
        (b"", "Invalid JSON"),
    ],
)
def test_bad_bodies_are_422_with_a_readable_message(
    client: TestClient, content: bytes, needle: str
) -> None:
    for headers in ({}, {"async_mode": "true"}):
        response = client.post(
            "/predict", content=content, headers={"content-type": "application/json", **headers}
        )
        assert response.status_code == 422
        body = response.json()
        assert needle in body["error"]
        assert body["detail"]


def test_bad_input_stores_nothing(
    make_client: Callable[..., TestClient], redis_client: redis.Redis
) -> None:
    client = make_client(worker_concurrency=0)
    client.post("/predict", content=b"{}", headers={"async_mode": "true"})
    assert key_count(redis_client) == 0


def test_body_over_the_limit_is_413(client: TestClient) -> None:
    big = b'{"input": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    response = client.post("/predict", content=big, headers={"async_mode": "true"})
    assert response.status_code == 413
    assert "MAX_BODY_BYTES" in response.json()["error"]


def test_streamed_body_over_the_limit_is_413(make_client: Callable[..., TestClient]) -> None:
    client = make_client(max_body_bytes=1000)

    def chunks() -> object:
        yield b'{"input": "'
        for _ in range(10):
            yield b"x" * 200
        yield b'"}'

    response = client.post("/predict", content=chunks())  # type: ignore[arg-type]
    assert response.status_code == 413


def test_body_at_the_limit_is_accepted(make_client: Callable[..., TestClient]) -> None:
    body = b'{"input": "' + b"x" * 100 + b'"}'
    client = make_client(max_body_bytes=len(body))
    assert client.post("/predict", content=body).status_code == 200


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}


def test_redis_down_is_503_not_500(make_client: Callable[..., TestClient], topology: str) -> None:
    client = make_client(redis_url=unreachable_url(topology), redis_socket_timeout_s=0.5)
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 503
    for response in (
        client.get(f"/predict/{uuid.uuid4()}"),
        client.post("/predict", json=BODY, headers={"async_mode": "true"}),
    ):
        assert response.status_code == 503
        assert response.json() == {"error": "Storage is unavailable; retry later."}
        assert "retry-after" in response.headers
    # The sync path needs no Redis at all.
    assert client.post("/predict", json=BODY).status_code == 200
