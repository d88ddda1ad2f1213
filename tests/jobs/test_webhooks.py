"""Webhooks end to end, against a real HTTP receiver the test starts: signed so that the
`standardwebhooks` package verifies them, retried with one webhook-id, stopped by 410,
dead-lettered, delivered after a kill -9 of the delivering process, and refused at submit for a
URL that is not public; on a single Redis and on a Cluster."""

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import httpx2 as httpx
import pytest
import redis
from fastapi.testclient import TestClient

from service.server.process import free_port
from service.settings import Settings
from service.storage.keys import WEBHOOK_GROUP, Keys
from tests.support.apps import RecordingModel
from tests.support.http import ASYNC, submit
from tests.support.served import serve
from tests.support.topologies import dead_letters as dead
from tests.support.topologies import job_keys, pending
from tests.support.waits import wait_until
from tests.support.webhooks import SECRET, Delivery, Receiver, local_env, receiver

pytestmark = pytest.mark.both_topologies

# A job submitted with the test's receiver as its webhook: its id and its deliveries.
Deliver = Callable[..., tuple[str, list[Delivery]]]
# Local receivers are allowed only by these settings (the defaults refuse them).
LOCAL = {"webhook_secret": SECRET, "webhook_allow_http": True, "webhook_allow_private": True}


@pytest.fixture
def hook() -> Iterator[Receiver]:
    with receiver() as state:
        yield state


@pytest.fixture
def webhook_client(make_client: Callable[..., TestClient]) -> Callable[..., TestClient]:
    def make(**overrides: Any) -> TestClient:
        return make_client(worker_concurrency=1, webhook_backoff_s=0.02, **LOCAL, **overrides)

    return make


def submit_with(client: TestClient, body: dict[str, Any]) -> str:
    """An async submit of "x" with `body`'s webhook fields."""
    return submit(client, {"input": "x", **body})


def dead_letters(client: redis.Redis, keys: Keys) -> list[dict[bytes, bytes]]:
    return [cast(dict[bytes, bytes], fields) for _, fields in dead(client, keys, "webhook_dead")]


def settled(client: redis.Redis, keys: Keys) -> bool:
    """Nothing pending or waiting for a retry on any shard."""
    return pending(client, keys, "webhooks", WEBHOOK_GROUP) == 0 and not any(
        client.zcard(shard.webhook_retries) for shard in keys.shards
    )


def wait_settled(client: redis.Redis, keys: Keys) -> None:
    wait_until(lambda: settled(client, keys), what="the deliveries settled")


@pytest.fixture
def delivered(
    webhook_client: Callable[..., TestClient], hook: Receiver, redis_client: redis.Redis, keys: Keys
) -> Deliver:
    """A job submitted with the receiver as its webhook, the receiver answering `answers`:
    its id and the first `count` deliveries, once nothing is pending or due for a retry."""

    def deliver(
        answers: list[int | None], count: int, **overrides: Any
    ) -> tuple[str, list[Delivery]]:
        hook.answers = answers
        prediction_id = submit_with(webhook_client(**overrides), {"webhook": hook.url})
        deliveries = hook.wait_for(count)
        wait_settled(redis_client, keys)
        return prediction_id, deliveries

    return deliver


def test_a_completed_event_is_signed_as_standard_webhooks_says(
    webhook_client: Callable[..., TestClient], hook: Receiver, redis_client: redis.Redis, keys: Keys
) -> None:
    client = webhook_client()
    prediction_id = submit_with(client, {"webhook": hook.url})
    [delivery] = hook.wait_for(1)
    payload = delivery.verified()  # standardwebhooks checks the signature and its timestamp
    polled = client.get(f"/predict/{prediction_id}").json()
    assert payload == {
        "type": "prediction.completed",
        "timestamp": payload["timestamp"],  # type: ignore[index]
        "data": polled,
    }
    assert polled["status"] == "succeeded"
    assert delivery.webhook_id == f"msg_{prediction_id}_completed"
    assert delivery.headers["content-type"] == "application/json"
    assert delivery.headers["webhook-signature"].startswith("v1,")
    wait_settled(redis_client, keys)
    time.sleep(0.2)
    assert len(hook.deliveries) == 1  # the default filter: `completed` only


def test_the_start_event_is_sent_only_when_the_filter_asks_for_it(
    webhook_client: Callable[..., TestClient], hook: Receiver, redis_client: redis.Redis, keys: Keys
) -> None:
    client = webhook_client()
    prediction_id = submit_with(
        client, {"webhook": hook.url, "webhook_events_filter": ["start", "completed"]}
    )
    # Deliveries run concurrently: the two events of a job may arrive in either order (the
    # payload's `data.status` and `timestamp` say which came first).
    payloads = [d.verified() for d in hook.wait_for(2)]
    events = {payload["type"]: payload for payload in payloads}  # type: ignore[index]
    start, completed = events["prediction.start"], events["prediction.completed"]
    assert start["data"] == {  # type: ignore[index]
        "error": "Prediction is still being processed.",
        "prediction_id": prediction_id,
        "status": "running",
    }
    assert completed["data"]["status"] == "succeeded"  # type: ignore[index]
    only_start = submit_with(client, {"webhook": hook.url, "webhook_events_filter": ["start"]})
    assert client.get(f"/predict/{only_start}?wait=5").json()["status"] == "succeeded"
    [third] = hook.wait_for(3)[2:]
    assert third.webhook_id == f"msg_{only_start}_start"
    wait_settled(redis_client, keys)
    time.sleep(0.3)
    assert len(hook.deliveries) == 3


def test_500_twice_then_200_is_three_deliveries_of_one_webhook_id(
    delivered: Deliver, hook: Receiver, redis_client: redis.Redis, keys: Keys
) -> None:
    _, deliveries = delivered([500, 500], 3)
    assert len({d.webhook_id for d in deliveries}) == 1
    for delivery in deliveries:
        delivery.verified()  # each attempt signed afresh, each valid
    time.sleep(0.2)
    assert len(hook.deliveries) == 3
    assert dead_letters(redis_client, keys) == []


def test_410_stops_the_deliveries(
    delivered: Deliver, hook: Receiver, redis_client: redis.Redis, keys: Keys
) -> None:
    delivered([410], 1)
    time.sleep(0.3)
    assert len(hook.deliveries) == 1
    assert dead_letters(redis_client, keys) == []


def test_a_redirect_is_not_followed_and_is_dead_lettered(
    delivered: Deliver, hook: Receiver, redis_client: redis.Redis, keys: Keys
) -> None:
    delivered([302], 1)
    [dead] = dead_letters(redis_client, keys)
    assert (dead[b"reason"], dead[b"attempts"]) == (b"answered 302", b"1")
    assert len(hook.deliveries) == 1  # /elsewhere was never asked


def test_after_the_last_attempt_the_event_is_a_dead_letter(
    delivered: Deliver, hook: Receiver, redis_client: redis.Redis, keys: Keys
) -> None:
    prediction_id, _ = delivered([503, 503, 503, 503], 3, webhook_max_attempts=3)
    [dead] = dead_letters(redis_client, keys)
    assert dead[b"id"] == f"msg_{prediction_id}_completed".encode()
    assert (dead[b"reason"], dead[b"attempts"]) == (b"answered 503", b"3")
    assert len(hook.deliveries) == 3


def test_a_timeout_and_a_refused_connection_are_retried(
    webhook_client: Callable[..., TestClient], hook: Receiver, redis_client: redis.Redis, keys: Keys
) -> None:
    hook.answers = [None]  # held past the timeout, then 200 for the retry
    # One app: a second one would deliver too, by its own settings (its maximum of attempts).
    client = webhook_client(webhook_timeout_s=0.3, webhook_max_attempts=2)
    submit_with(client, {"webhook": hook.url})
    first, second = hook.wait_for(2)
    assert first.webhook_id == second.webhook_id
    hook.release.set()
    # Nothing listens on the closed port: two attempts, then a dead letter.
    closed = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
    submit_with(client, {"webhook": closed})
    wait_until(
        lambda: any(d[b"url"] == closed.encode() for d in dead_letters(redis_client, keys)),
        what="a dead letter for the closed port",
    )
    [dead] = [d for d in dead_letters(redis_client, keys) if d[b"url"] == closed.encode()]
    assert dead[b"reason"].startswith(b"could not connect")
    assert dead[b"attempts"] == b"2"


def test_no_more_than_webhook_concurrency_deliveries_are_in_flight(
    webhook_client: Callable[..., TestClient], hook: Receiver
) -> None:
    """Held by the receiver, the events of jobs on every shard wait for a free slot."""
    hook.answers = [None] * 6
    client = webhook_client(webhook_concurrency=2)
    for _ in range(6):
        submit_with(client, {"webhook": hook.url})
    hook.wait_for(2)
    time.sleep(0.5)
    assert len(hook.deliveries) == 2
    hook.release.set()
    assert len({d.webhook_id for d in hook.wait_for(6)}) == 6


def test_a_canceled_job_sends_its_completed_event_as_canceled(
    webhook_client: Callable[..., TestClient], hook: Receiver
) -> None:
    model = RecordingModel()
    model.hold = True
    client = webhook_client(with_model=model)
    prediction_id = submit_with(client, {"webhook": hook.url})
    assert client.post(f"/predict/{prediction_id}/cancel").status_code == 200
    model.hold = False
    [delivery] = hook.wait_for(1)
    payload = delivery.verified()
    assert payload["data"] == client.get(f"/predict/{prediction_id}").json()  # type: ignore[index]
    assert payload["data"]["status"] == "canceled"  # type: ignore[index]


@pytest.mark.parametrize(
    ("settings", "url", "message"),
    [
        ({}, "http://127.0.0.1:1/hook", "WEBHOOK_SECRET is unset"),
        ({"webhook_secret": SECRET}, "http://127.0.0.1:1/hook", "must be https"),
        (
            {"webhook_secret": SECRET, "webhook_allow_http": True},
            "http://127.0.0.1:1/hook",
            "non-public address (127.0.0.1)",
        ),
        ({"webhook_secret": SECRET}, "https://10.1.2.3/hook", "non-public address"),
        ({"webhook_secret": SECRET}, "https://[::1]/hook", "non-public address"),
        ({"webhook_secret": SECRET}, "https://localhost/hook", "non-public address"),
    ],
)
def test_a_url_that_is_not_allowed_is_422_at_submit(
    make_client: Callable[..., TestClient],
    redis_client: redis.Redis,
    settings: dict[str, Any],
    url: str,
    message: str,
) -> None:
    client = make_client(worker_concurrency=0, **settings)
    answer = client.post("/predict", json={"input": "x", "webhook": url}, headers=ASYNC)
    assert answer.status_code == 422
    assert message in answer.json()["error"]
    assert job_keys(redis_client) == set()  # nothing was stored


def test_a_webhook_needs_async_mode_and_a_filter_needs_a_webhook(
    make_client: Callable[..., TestClient], hook: Receiver
) -> None:
    client = make_client(worker_concurrency=0, **LOCAL)
    sync = client.post("/predict", json={"input": "x", "webhook": hook.url})
    assert sync.status_code == 422
    assert "async mode" in sync.json()["error"]
    lonely = client.post(
        "/predict", json={"input": "x", "webhook_events_filter": ["start"]}, headers=ASYNC
    )
    assert lonely.status_code == 422
    unknown = client.post(
        "/predict",
        json={"input": "x", "webhook": hook.url, "webhook_events_filter": ["finished"]},
        headers=ASYNC,
    )
    assert unknown.status_code == 422


@pytest.mark.single_topology
def test_a_delivery_survives_a_kill_9_of_the_process_delivering_it(
    tmp_path: Path, redis_url: str, hook: Receiver
) -> None:
    """The first process is killed with the delivery in flight (the receiver holds it); a
    second takes the pending delivery over and sends it, with the same webhook-id."""
    hook.answers = [None]
    env = {
        "REDIS_URL": redis_url,
        "WORKER_CONCURRENCY": "1",
        **local_env(),
        "WEBHOOK_TIMEOUT_S": "2",
        "WEBHOOK_CLAIM_IDLE_MS": "2000",
    }
    with serve(env, tmp_path / "first") as first:
        accepted = httpx.post(
            f"{first.url}/predict", json={"input": "x", "webhook": hook.url}, headers=ASYNC
        )
        assert accepted.status_code == 202
        prediction_id = accepted.json()["prediction_id"]
        [held] = hook.wait_for(1)  # in flight now, unanswered
        os.killpg(first.process.pid, signal.SIGKILL)
        first.process.wait(10)
    killed_at = time.monotonic()
    with serve(env, tmp_path / "second"):
        second = hook.wait_for(2, timeout_s=30)[1]
    assert time.monotonic() - killed_at < 30
    assert second.webhook_id == held.webhook_id == f"msg_{prediction_id}_completed"
    assert second.verified()["data"]["status"] == "succeeded"  # type: ignore[index]


def test_the_settings_refuse_a_secret_that_is_not_whsec_base64() -> None:
    with pytest.raises(ValueError, match="WEBHOOK_SECRET"):
        Settings(webhook_secret="not-a-secret")
    with pytest.raises(ValueError, match="WEBHOOK_SECRET"):
        Settings(webhook_secret="whsec_c2hvcnQ=")  # 5 bytes
    assert Settings(webhook_secret=SECRET).webhook_secret == SECRET
