"""POST /predict/batch: sync, the model once and the answers in order; async, one job per input
in one submit call per shard, each input accepted or refused alone; on a single Redis and on a
Cluster."""

import uuid
from collections.abc import Callable

import pytest
import redis
from fastapi.testclient import TestClient

from service.storage.keys import Keys
from tests.support.apps import RecordingModel
from tests.support.http import ASYNC
from tests.support.topologies import commands_seen_everywhere, reset_command_stats, total

pytestmark = pytest.mark.both_topologies


def test_a_sync_batch_calls_the_model_once_and_answers_in_order(
    make_client: Callable[..., TestClient], redis_client: redis.Redis
) -> None:
    model = RecordingModel()
    client = make_client(model, worker_concurrency=0)
    inputs = [f"input-{n}" for n in range(50)]
    reset_command_stats(redis_client)
    answer = client.post("/predict/batch", json={"inputs": inputs})
    assert answer.status_code == 200
    assert answer.json() == {"predictions": [{"input": i, "result": f"r:{i}"} for i in inputs]}
    assert model.calls == [inputs]
    assert commands_seen_everywhere(redis_client) == {}  # sync: no Redis at all


def test_a_sync_batch_input_the_model_fails_on_fails_alone(
    make_client: Callable[..., TestClient],
) -> None:
    model = RecordingModel(fail_on="poison")
    client = make_client(model, worker_concurrency=0)
    answer = client.post("/predict/batch", json={"inputs": ["a", "poison", "b"]})
    assert answer.status_code == 200
    assert answer.json()["predictions"] == [
        {"input": "a", "result": "r:a"},
        {"input": "poison", "error": "Prediction failed.", "reason": "ValueError"},
        {"input": "b", "result": "r:b"},
    ]
    # The batch call raised; then each input alone.
    assert model.calls == [["a", "poison", "b"], ["a"], ["poison"], ["b"]]


def test_an_async_batch_of_1000_is_one_submit_call_per_shard(
    make_client: Callable[..., TestClient], redis_client: redis.Redis, keys: Keys
) -> None:
    model = RecordingModel()
    api = make_client(model, worker_concurrency=0)
    inputs = [f"job-{n}" for n in range(1000)]
    api.post("/predict/batch", json={"inputs": inputs[:1]}, headers=ASYNC)  # loads the script
    reset_command_stats(redis_client)
    answer = api.post("/predict/batch", json={"inputs": inputs}, headers=ASYNC)
    assert answer.status_code == 202, answer.text
    seen = commands_seen_everywhere(redis_client)
    # One script call per shard, whatever the batch's size (the commands inside it are the
    # script's own, counted by Redis too).
    assert seen.pop("cmdstat_evalsha") == len(keys.shards)
    assert seen["cmdstat_xadd"] == seen["cmdstat_hset"] == 1000
    predictions = answer.json()["predictions"]
    assert len(predictions) == 1000
    ids = [uuid.UUID(item["prediction_id"]) for item in predictions]
    assert len(set(ids)) == 1000
    assert all(item["status"] == "queued" for item in predictions)
    # Spread over every shard, each job in its shard's slot.
    assert {keys.shard_of(job_id) for job_id in ids} == set(keys.shards)
    assert total(redis_client, keys, "backlog") == 1001

    workers = make_client(model, worker_concurrency=2)
    for text, job_id in zip(inputs, ids, strict=True):
        polled = workers.get(f"/predict/{job_id}?wait=10").json()
        assert (polled["status"], polled["input"], polled["result"]) == (
            "succeeded",
            text,
            f"r:{text}",
        )


def test_each_input_of_an_async_batch_is_admitted_alone(
    make_client: Callable[..., TestClient],
) -> None:
    # MAX_QUEUE=3: on one shard three places; on three shards one each (ceil(3/3)).
    client = make_client(worker_concurrency=0, max_queue=3)
    answer = client.post("/predict/batch", json={"inputs": list("abcde")}, headers=ASYNC)
    assert answer.status_code == 202
    predictions = answer.json()["predictions"]
    accepted = [item for item in predictions if "prediction_id" in item]
    refused = [item for item in predictions if "error" in item]
    assert len(accepted) == 3
    assert len(refused) == 2
    assert all(item["code"] == 429 and "queue is full" in item["error"] for item in refused)
    assert int(answer.headers["retry-after"]) >= 1
    # Nothing left: the whole batch is refused as one submit would be.
    full = client.post("/predict/batch", json={"inputs": ["f"]}, headers=ASYNC)
    assert full.status_code == 429
    assert full.json()["predictions"][0]["code"] == 429


def test_over_the_limit_and_empty_batches_are_422(
    make_client: Callable[..., TestClient], redis_client: redis.Redis
) -> None:
    client = make_client(worker_concurrency=0, batch_max_inputs=5)
    reset_command_stats(redis_client)
    over = client.post("/predict/batch", json={"inputs": list("abcdef")}, headers=ASYNC)
    assert over.status_code == 422
    assert over.json()["detail"][0]["loc"] == ["body", "inputs"]
    assert client.post("/predict/batch", json={"inputs": []}).status_code == 422
    bad_item = client.post("/predict/batch", json={"inputs": ["a", 7]}, headers=ASYNC)
    assert bad_item.status_code == 422
    assert bad_item.json()["detail"][0]["loc"] == ["body", "inputs", 1]
    assert commands_seen_everywhere(redis_client) == {}  # nothing was stored


def test_an_idempotency_key_on_a_batch_is_refused(make_client: Callable[..., TestClient]) -> None:
    client = make_client(worker_concurrency=0)
    answer = client.post(
        "/predict/batch",
        json={"inputs": ["a"]},
        headers={**ASYNC, "Idempotency-Key": "k1"},
    )
    assert answer.status_code == 422
    assert "Idempotency-Key" in answer.json()["error"]


def test_a_batch_preferring_respond_async_says_so(make_client: Callable[..., TestClient]) -> None:
    client = make_client(worker_concurrency=0)
    answer = client.post(
        "/predict/batch", json={"inputs": ["a", "b"]}, headers={"Prefer": "respond-async"}
    )
    assert answer.status_code == 202
    assert answer.headers["preference-applied"] == "respond-async"
