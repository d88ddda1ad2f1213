"""POST /predict/{id}/cancel: a queued job never runs, a running job's result is dropped, a
final job is left as it was, and cancelling twice is harmless; on a single Redis and on a
Cluster."""

import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
from fastapi.testclient import TestClient

from service.storage.keys import Keys
from tests.support.apps import RecordingModel, services_of
from tests.support.http import KEY_A, KEY_B, submit
from tests.support.topologies import pending, total
from tests.support.waits import wait_until

pytestmark = pytest.mark.both_topologies


def wait_for_status(client: TestClient, prediction_id: str, status: str) -> None:
    wait_until(
        lambda: client.get(f"/predict/{prediction_id}").json()["status"] == status,
        what=f"{prediction_id} becoming {status}",
    )


def canceled_body(prediction_id: str) -> dict[str, object]:
    return {
        "error": "Prediction canceled.",
        "prediction_id": prediction_id,
        "status": "canceled",
        "reason": None,
    }


def test_a_queued_job_is_canceled_and_the_model_never_sees_it(
    make_client: Callable[..., TestClient], redis_client: redis.Redis, keys: Keys
) -> None:
    model = RecordingModel()
    api = make_client(model, worker_concurrency=0)  # no consumer yet: the jobs stay queued
    canceled, kept = submit(api, {"input": "to-cancel"}), submit(api, {"input": "to-keep"})
    answer = api.post(f"/predict/{canceled}/cancel")
    assert answer.status_code == 200
    assert answer.json() == canceled_body(canceled)
    polled = api.get(f"/predict/{canceled}")
    assert polled.status_code == 200
    assert polled.json() == canceled_body(canceled)

    # Now consumers run (a second process of the same deployment): the kept job runs, the
    # canceled one never reaches the model.
    workers = make_client(model, worker_concurrency=1)
    assert workers.get(f"/predict/{kept}?wait=10").json()["status"] == "succeeded"
    assert model.seen == ["to-keep"]
    assert api.get(f"/predict/{canceled}").json()["status"] == "canceled"
    # The canceled job left the queue: nothing pending, nothing counted as waiting.
    assert pending(redis_client, keys) == 0
    assert total(redis_client, keys, "backlog") == 0


def test_a_running_job_is_canceled_and_its_result_is_dropped(
    make_client: Callable[..., TestClient], redis_client: redis.Redis, keys: Keys
) -> None:
    model = RecordingModel()
    model.hold = True
    client = make_client(model, worker_concurrency=1)
    prediction_id = submit(client, {"input": "running"})
    wait_for_status(client, prediction_id, "running")
    assert client.post(f"/predict/{prediction_id}/cancel").json() == canceled_body(prediction_id)
    model.hold = False  # the model answers now; its result must not be kept
    # The consumer finished (acknowledged) the entry.
    wait_until(lambda: pending(redis_client, keys) == 0, what="the entry acknowledged")
    assert model.seen == ["running"]
    assert client.get(f"/predict/{prediction_id}").json() == canceled_body(prediction_id)
    stored = redis_client.hgetall(keys.job(prediction_id))
    assert stored[b"status"] == b"canceled"
    assert b"result" not in stored
    assert total(redis_client, keys, "backlog") == 0


def test_cancelling_twice_is_harmless(make_client: Callable[..., TestClient]) -> None:
    client = make_client(worker_concurrency=0)
    prediction_id = submit(client, {"input": "twice"})
    first = client.post(f"/predict/{prediction_id}/cancel")
    second = client.post(f"/predict/{prediction_id}/cancel")
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json() == canceled_body(prediction_id)


def test_a_final_job_is_left_as_it_was(make_client: Callable[..., TestClient]) -> None:
    client = make_client(RecordingModel(), worker_concurrency=1)
    prediction_id = submit(client, {"input": "done"})
    finished = client.get(f"/predict/{prediction_id}?wait=10").json()
    assert finished["status"] == "succeeded"
    answer = client.post(f"/predict/{prediction_id}/cancel")
    assert answer.status_code == 409
    assert answer.json() == {
        "error": "Prediction had already finished; it was not canceled.",
        "prediction_id": prediction_id,
        "status": "succeeded",
    }
    assert client.get(f"/predict/{prediction_id}").json() == finished


def test_a_long_poll_waiting_on_the_job_answers_canceled(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(worker_concurrency=0)
    prediction_id = submit(client, {"input": "waited on"})
    with ThreadPoolExecutor(1) as pool:
        started = time.monotonic()
        waiting = pool.submit(client.get, f"/predict/{prediction_id}?wait=20")
        wait_until(lambda: services_of(client).notifier.waiters == 1, what="the long-poll waiting")
        assert client.post(f"/predict/{prediction_id}/cancel").status_code == 200
        answer = waiting.result(timeout=10)
    assert time.monotonic() - started < 10  # woken by the cancel, not by its timeout
    assert answer.status_code == 200
    assert answer.json() == canceled_body(prediction_id)


def test_an_unknown_job_is_404(make_client: Callable[..., TestClient]) -> None:
    client = make_client(worker_concurrency=0)
    answer = client.post(f"/predict/{uuid.uuid4()}/cancel")
    assert answer.status_code == 404
    assert answer.json() == {"error": "Prediction ID not found."}
    assert client.post("/predict/not-a-uuid/cancel").status_code == 422


def test_another_keys_job_is_404_and_left_alone(make_client: Callable[..., TestClient]) -> None:
    client = make_client(worker_concurrency=0, api_keys=f"{KEY_A},{KEY_B}")
    prediction_id = submit(client, {"input": "mine"}, **{"X-API-Key": KEY_A})
    other = client.post(f"/predict/{prediction_id}/cancel", headers={"X-API-Key": KEY_B})
    assert other.status_code == 404
    assert other.json() == {"error": "Prediction ID not found."}
    mine = client.get(f"/predict/{prediction_id}", headers={"X-API-Key": KEY_A})
    assert mine.json()["status"] == "queued"
    assert client.post(f"/predict/{prediction_id}/cancel").status_code == 401
    owner = client.post(f"/predict/{prediction_id}/cancel", headers={"X-API-Key": KEY_A})
    assert owner.status_code == 200
