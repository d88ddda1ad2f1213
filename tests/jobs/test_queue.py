"""The durable stream backend, in-process against a real Redis and a real 3-primary Redis
Cluster (each test runs on both): attempts and dead letters, deadlines, backpressure,
idempotency, micro-batching, long-poll and `Prefer: wait`."""

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from service.jobs.backends.stream import retry_after_s
from service.jobs.consumer import ConsumerConfig, ConsumerPool, StreamConsumer
from service.storage.keys import GROUP, Keys
from tests.support.apps import FailingModel, in_app, services_of
from tests.support.http import ASYNC, BODY, submit
from tests.support.topologies import dead_letters, job_keys, pending, stream_length, total

pytestmark = pytest.mark.both_topologies


def test_a_model_that_always_raises_ends_failed_and_dead_lettered(
    make_client: Callable[..., TestClient], redis_client: redis.Redis, keys: Keys
) -> None:
    model = FailingModel()
    client = make_client(model, max_attempts=3)
    prediction_id = submit(client)
    body = client.get(f"/predict/{prediction_id}?wait=10").json()
    assert body["status"] == "failed"
    assert body["error"] == "Prediction failed."
    assert body["reason"] == "RuntimeError"
    assert model.calls == 3
    [(_, letter)] = dead_letters(redis_client, keys)
    assert letter is not None
    assert letter[b"id"] == prediction_id.encode()
    assert letter[b"attempts"] == b"3"
    assert letter[b"input"] == b'"some_input_data"'
    assert redis_client.hget(keys.job(prediction_id), "attempts") == b"3"
    assert total(redis_client, keys, "backlog") == 0
    assert pending(redis_client, keys) == 0


def test_a_job_delivered_more_than_max_attempts_is_not_run_again(
    make_client: Callable[..., TestClient], redis_client: redis.Redis, keys: Keys
) -> None:
    """A poison job that kills its worker every time is never acknowledged: its deliveries
    are counted when it starts, and the one after MAX_ATTEMPTS fails it without running it."""
    client = make_client(worker_concurrency=0, max_attempts=2, claim_idle_ms=50)
    prediction_id = submit(client)
    # Two deliveries died: the entry is left pending on a consumer that is gone.
    shard = keys.shard_of(prediction_id)
    assert shard is not None
    redis_client.xgroup_create(shard.stream, GROUP, id="0")
    redis_client.xreadgroup(GROUP, "died", {shard.stream: ">"}, count=1)
    redis_client.hset(keys.job(prediction_id), "attempts", 2)
    time.sleep(0.1)  # past CLAIM_IDLE_MS: the next consumer reclaims it
    pool = drain_with_one_consumer(client)
    assert sum(consumer.stats.reclaimed for consumer in pool.consumers) == 1
    body = client.get(f"/predict/{prediction_id}").json()
    assert body["status"] == "failed"
    assert body["reason"] == "gave up after 2 attempts"
    assert sum(consumer.stats.jobs for consumer in pool.consumers) == 0  # never run
    assert len(dead_letters(redis_client, keys)) == 1


class AttemptsSeen:
    """A model that fails its first call and records, at each call, the attempts that the
    job's hash held when the model started (the test's one job is the only one in Redis)."""

    name = "attempts-seen"
    version = "1"
    input_type = str
    example_input = "x"

    def __init__(self, redis_client: redis.Redis) -> None:
        self.redis = redis_client
        self.seen: list[object] = []

    async def predict_batch(self, inputs: Sequence[Any]) -> list[str]:
        [key] = job_keys(self.redis)
        self.seen.append(self.redis.hget(key, "attempts"))
        if len(self.seen) == 1:
            raise RuntimeError("first call fails")
        return ["ok" for _ in inputs]


def test_a_first_delivery_runs_while_its_attempt_is_counted_and_a_retry_after(
    make_client: Callable[..., TestClient], redis_client: redis.Redis
) -> None:
    """A new job has no attempts to count yet: the model starts while its marking round trip
    is in flight (it sees the attempts still at 0). A retried job runs only once its attempt
    is counted, so that MAX_ATTEMPTS holds."""
    model = AttemptsSeen(redis_client)
    client = make_client(model, max_attempts=3)
    prediction_id = submit(client)
    body = client.get(f"/predict/{prediction_id}?wait=10").json()
    assert body["status"] == "succeeded", body
    assert model.seen == [b"0", b"2"]


def test_a_first_delivery_whose_job_is_gone_runs_but_writes_nothing(
    make_client: Callable[..., TestClient], redis_client: redis.Redis, keys: Keys
) -> None:
    client = make_client(worker_concurrency=0)
    prediction_id = submit(client)
    redis_client.delete(keys.job(prediction_id))  # expired or deleted while queued
    pool = drain_with_one_consumer(client)
    # It ran, before the marking said it was gone.
    assert sum(consumer.stats.jobs for consumer in pool.consumers) == 1
    assert redis_client.exists(keys.job(prediction_id)) == 0  # its result was dropped
    assert pending(redis_client, keys) == 0
    assert client.get(f"/predict/{prediction_id}").status_code == 404


def drain_with_one_consumer(client: TestClient) -> ConsumerPool:
    """One consumer of the app's own per shard, run on its loop until every backlog is
    empty; their stats are the deterministic counts the tests read."""
    services = services_of(client)
    config = ConsumerConfig.from_settings(services.settings)
    consumers = [
        StreamConsumer(services.redis, services.store, shard, services.model, config, "test-0")
        for shard in services.store.keys.shards
    ]
    pool = ConsumerPool(consumers)
    in_app(client, lambda: _run_until_idle(pool))
    return pool


async def _run_until_idle(pool: ConsumerPool) -> None:
    pool.start()
    for _ in range(200):
        await asyncio.sleep(0.02)
        backlogs = [await c.redis.get(c.shard.backlog) for c in pool.consumers]
        if all(backlog in (b"0", None) for backlog in backlogs):
            break
    await pool.stop(5)


def test_micro_batching_gives_the_model_full_batches(
    make_client: Callable[..., TestClient], keys: Keys
) -> None:
    client = make_client(worker_concurrency=0, max_batch_size=32)
    ids = [submit(client) for _ in range(100)]
    pool = drain_with_one_consumer(client)
    # Each shard's consumer takes its shard's jobs in batches of 32 and one for the rest.
    per_shard = Counter(shard.index for shard in map(keys.shard_of, ids) if shard is not None)
    for consumer in pool.consumers:
        queued = per_shard[consumer.shard.index]
        stats = consumer.stats
        assert (stats.jobs, stats.batches) == (queued, -(-queued // 32))
        assert stats.largest_batch == min(queued, 32)
    assert all(client.get(f"/predict/{i}").json()["status"] == "succeeded" for i in ids)


def test_a_job_past_its_deadline_expires_without_running(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(worker_concurrency=0)
    late = submit(client, {"input": "x", "deadline_s": 0.01})
    timely = submit(client, {"input": "x", "deadline_s": 60})
    time.sleep(0.05)
    pool = drain_with_one_consumer(client)
    expired = client.get(f"/predict/{late}").json()
    assert expired["status"] == "expired"
    assert expired["error"] == "Prediction expired before it could run."
    assert client.get(f"/predict/{timely}").json()["status"] == "succeeded"
    assert sum(consumer.stats.jobs for consumer in pool.consumers) == 1


@pytest.mark.parametrize("deadline", [0, -1, "soon", 10**9])
def test_bad_deadlines_are_422(client: TestClient, deadline: object) -> None:
    response = client.post("/predict", json={"input": "x", "deadline_s": deadline}, headers=ASYNC)
    assert response.status_code == 422
    assert "deadline_s" in response.json()["error"]


def test_past_max_queue_submits_get_429_with_retry_after(
    make_client: Callable[..., TestClient], redis_client: redis.Redis, keys: Keys
) -> None:
    """Admission is per shard, each taking its share of MAX_QUEUE (2 of 6 on 3 shards)."""
    client = make_client(worker_concurrency=0, max_queue=6)
    answers = [client.post("/predict", json=BODY, headers=ASYNC) for _ in range(60)]
    assert sum(answer.status_code == 202 for answer in answers) == 6
    refused = [answer for answer in answers if answer.status_code != 202]
    assert {answer.status_code for answer in refused} == {429}
    for answer in refused:
        assert int(answer.headers["retry-after"]) >= 1
        assert "queue is full" in answer.json()["error"]
    assert stream_length(redis_client, keys) == 6
    assert total(redis_client, keys, "backlog") == 6
    assert len(job_keys(redis_client)) == 6  # a refused job leaves nothing behind
    # The synchronous path is not queued, so it is not refused.
    assert client.post("/predict", json=BODY).status_code == 200


def test_retry_after_follows_the_backlog_and_the_completion_rate() -> None:
    assert retry_after_s(backlog=1000, max_queue=1000, rate=None) == 1
    assert retry_after_s(backlog=1000, max_queue=1000, rate=0.0) == 60
    assert retry_after_s(backlog=1000, max_queue=1000, rate=50.0) == 2  # 100 over 90% at 50/s
    assert retry_after_s(backlog=1000, max_queue=1000, rate=1e6) == 1
    assert retry_after_s(backlog=100_000, max_queue=1000, rate=1.0) == 60


def test_the_stream_stays_capped(
    make_client: Callable[..., TestClient], redis_client: redis.Redis, keys: Keys
) -> None:
    client = make_client(max_queue=10, stream_maxlen=20)
    for _ in range(300):
        prediction_id = submit(client)
        client.get(f"/predict/{prediction_id}?wait=5")
    # MAXLEN ~ trims whole radix-tree nodes (100 entries by default), so the cap is approximate.
    assert all(redis_client.xlen(shard.stream) <= 20 + 100 for shard in keys.shards)


def test_idempotency_key_returns_the_same_prediction(
    make_client: Callable[..., TestClient], redis_client: redis.Redis, keys: Keys
) -> None:
    client = make_client(worker_concurrency=0)
    first = client.post("/predict", json=BODY, headers={**ASYNC, "Idempotency-Key": "order-42"})
    again = client.post("/predict", json=BODY, headers={**ASYNC, "Idempotency-Key": "order-42"})
    assert first.status_code == again.status_code == 202
    assert again.json()["prediction_id"] == first.json()["prediction_id"]
    assert again.headers["idempotent-replayed"] == "true"
    assert stream_length(redis_client, keys) == 1
    other = client.post(
        "/predict", json={"input": "other"}, headers={**ASYNC, "Idempotency-Key": "order-42"}
    )
    assert other.status_code == 422
    assert "Idempotency-Key" in other.json()["error"]
    assert stream_length(redis_client, keys) == 1
    assert (
        client.post("/predict", json=BODY, headers={**ASYNC, "Idempotency-Key": ""}).status_code
        == 422
    )
    assert (
        client.post(
            "/predict", json=BODY, headers={**ASYNC, "Idempotency-Key": "k" * 256}
        ).status_code
        == 422
    )


def test_prefer_wait_answers_200_for_a_fast_model(make_client: Callable[..., TestClient]) -> None:
    client = make_client()
    response = client.post("/predict", json=BODY, headers={**ASYNC, "Prefer": "wait=5"})
    assert response.status_code == 200
    assert response.headers["preference-applied"] == "wait=5"
    body = response.json()
    assert body["input"] == "some_input_data"
    assert body["result"].isdigit()
    assert uuid.UUID(body["prediction_id"])


def test_prefer_wait_answers_202_for_a_slow_model(make_client: Callable[..., TestClient]) -> None:
    client = make_client(mock_latency_ms=2000)
    response = client.post(
        "/predict", json=BODY, headers={**ASYNC, "Prefer": "respond-async, wait=0.2"}
    )
    assert response.status_code == 202
    # The wait was not applied (the job was not done in time); the async answer was.
    assert response.headers["preference-applied"] == "respond-async"
    assert response.headers["location"].endswith(response.json()["prediction_id"])


def test_prefer_respond_async_asks_for_the_async_answer(
    make_client: Callable[..., TestClient],
) -> None:
    """RFC 7240's respond-async, a third way to ask for async mode beside both spellings of
    the async-mode header; an async-mode header, when sent, decides."""
    client = make_client()
    accepted = client.post("/predict", json=BODY, headers={"Prefer": "respond-async"})
    assert accepted.status_code == 202
    assert accepted.headers["preference-applied"] == "respond-async"
    done = client.get(f"{accepted.headers['location']}?wait=5").json()
    assert done["status"] == "succeeded"
    waited = client.post("/predict", json=BODY, headers={"Prefer": "respond-async; x=1, wait=5"})
    assert waited.status_code == 200
    assert waited.headers["preference-applied"] == "wait=5"
    overruled = client.post(
        "/predict", json=BODY, headers={"Prefer": "respond-async", "async_mode": "false"}
    )
    assert overruled.status_code == 200
    assert "preference-applied" not in overruled.headers
    assert client.post("/predict", json=BODY, headers={"Prefer": "wait=5"}).status_code == 200


def test_long_poll_is_capped_at_max_wait(client: TestClient) -> None:
    prediction_id = submit(client)
    assert client.get(f"/predict/{prediction_id}?wait=31").status_code == 422
    response = client.get(f"/predict/{prediction_id}?wait=0.1")
    assert response.status_code == 202
    assert response.json()["error"] == "Prediction is still being processed."


def test_long_poll_of_an_unknown_id_is_404_at_once(client: TestClient) -> None:
    started = time.monotonic()
    response = client.get(f"/predict/{uuid.uuid4()}?wait=10")
    assert response.status_code == 404
    assert time.monotonic() - started < 5  # it did not wait out the 10 s


def test_a_redis_that_lost_the_scripts_still_takes_submits_and_runs_jobs(
    make_client: Callable[..., TestClient], redis_client: redis.Redis
) -> None:
    client = make_client()
    submit(client)  # the scripts are loaded
    redis_client.script_flush()  # as a restarted Redis without persistence would have them
    prediction_id = submit(client)
    assert client.get(f"/predict/{prediction_id}?wait=5").json()["status"] == "succeeded"


def test_a_submit_sent_twice_queues_its_job_once(
    make_client: Callable[..., TestClient], redis_client: redis.Redis, keys: Keys
) -> None:
    """A client library that retries a command whose reply it lost sends the same submit
    (the same job id) again: the second run adds nothing."""
    client = make_client(worker_concurrency=0)
    store = services_of(client).store
    job_id = store.new_job_id()

    async def submit_twice() -> list[str]:
        first = await store.submit(job_id, b'"x"', enqueue=True)
        again = await store.submit(job_id, b'"x"', enqueue=True)
        return [first.verdict, again.verdict]

    assert in_app(client, submit_twice) == ["ok", "ok"]
    assert stream_length(redis_client, keys) == 1
    assert total(redis_client, keys, "backlog") == 1
