"""GET /predict/{id}/events: a job's states as Server-Sent Events, over a real socket (an
in-process transport hands over a response only once it is whole), under API keys, with
heartbeats, Last-Event-ID, and a thousand streams on one pub/sub subscription."""

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis
from fastapi.testclient import TestClient
from httpx_sse import ServerSentEvent, aconnect_sse

from service.server.embedded_redis import EmbeddedRedis
from service.server.process import ServerProcess, free_port, stop
from service.server.redis_topology import LocalCluster
from service.storage.keys import Keys
from tests.support.apps import services_of
from tests.support.http import ASYNC, KEY_A, KEY_B, bearer
from tests.support.metrics import scraped_total
from tests.support.served import serve
from tests.support.waits import wait_until


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """A Redis for this module's served tests alone: the session's is flushed by in-process
    tests, and its clients are counted here."""
    with EmbeddedRedis(tmp_path_factory.mktemp("redis"), port=free_port(), appendonly=False) as r:
        yield r


def submit(url: str, headers: dict[str, str] | None = None) -> str:
    answer = httpx.post(f"{url}/predict", json={"input": "x"}, headers={**ASYNC, **(headers or {})})
    assert answer.status_code == 202, answer.text
    prediction_id: str = answer.json()["prediction_id"]
    return prediction_id


async def events_of(
    url: str, prediction_id: str, headers: dict[str, str] | None = None
) -> list[ServerSentEvent]:
    """Every event of the stream, until the server ends it."""
    path = f"{url}/predict/{prediction_id}/events"
    async with (
        httpx.AsyncClient(timeout=10) as client,
        aconnect_sse(client, "GET", path, headers=dict(headers or {})) as source,
    ):
        assert source.response.status_code == 200
        assert source.response.headers["content-type"].startswith("text/event-stream")
        return [event async for event in source.aiter_sse()]


def poll_body(url: str, prediction_id: str) -> Any:
    return httpx.get(f"{url}/predict/{prediction_id}").json()


@pytest.fixture(scope="module")
def slow_service(
    tmp_path_factory: pytest.TempPathFactory, own_redis: EmbeddedRedis
) -> Iterator[ServerProcess]:
    """One consumer, and a model that takes 300 ms: a job is queued, then running, long
    enough for a stream to see each state."""
    env = {
        "REDIS_URL": own_redis.url,
        "KEY_PREFIX": "sse-slow:",
        "MOCK_LATENCY_MS": "300",
        "WORKER_CONCURRENCY": "1",
    }
    with serve(env, tmp_path_factory.mktemp("sse")) as served:
        yield served


@pytest.mark.served
def test_a_stream_sends_queued_running_and_the_final_answer(slow_service: ServerProcess) -> None:
    url = slow_service.url
    first, second = submit(url), submit(url)  # the second waits for the first: queued
    events = asyncio.run(events_of(url, second))
    assert [(e.event, e.id) for e in events] == [
        ("queued", "0"),
        ("running", "1"),
        ("succeeded", "2"),
    ]
    queued, running, final = (orjson.loads(e.data) for e in events)
    assert queued == {
        "error": "Prediction is still being processed.",
        "prediction_id": second,
        "status": "queued",
    }
    assert running == {**queued, "status": "running"}
    assert final == poll_body(url, second)
    assert final["status"] == "succeeded"
    assert poll_body(url, first)["status"] == "succeeded"


@pytest.mark.served
def test_a_stream_follows_a_job_on_a_cluster(tmp_path: Path, redis_cluster: LocalCluster) -> None:
    """On a Cluster the notices are sharded (SPUBLISH on the job's shard): its start and its
    end reach the stream all the same."""
    env = {
        "REDIS_URL": redis_cluster.url,
        "KEY_PREFIX": "sse-cluster:",
        "MOCK_LATENCY_MS": "500",
        "WORKER_CONCURRENCY": "1",
    }
    with serve(env, tmp_path) as served:
        prediction_id = submit(served.url)
        events = asyncio.run(events_of(served.url, prediction_id))
        final = poll_body(served.url, prediction_id)
    # Its consumer may have taken it before the stream opened: queued is its state, or not.
    started = [(e.event, e.id) for e in events if e.event != "queued"]
    assert started == [("running", "1"), ("succeeded", "2")]
    assert orjson.loads(events[-1].data) == final


@pytest.mark.served
def test_last_event_id_resumes_without_replaying(slow_service: ServerProcess) -> None:
    url = slow_service.url
    submit(url)
    prediction_id = submit(url)
    resumed = asyncio.run(events_of(url, prediction_id, {"Last-Event-ID": "1"}))
    assert [(e.event, e.id) for e in resumed] == [("succeeded", "2")]
    assert orjson.loads(resumed[0].data) == poll_body(url, prediction_id)
    # A client that has the final event is told there is nothing more: 204, no stream (an
    # EventSource stops reconnecting on it).
    answer = httpx.get(
        f"{url}/predict/{prediction_id}/events", headers={"Last-Event-ID": "2"}, timeout=10
    )
    assert (answer.status_code, answer.content) == (204, b"")
    # A job already final: its final event, then the end.
    again = asyncio.run(events_of(url, prediction_id))
    assert [(e.event, e.id, e.data) for e in again] == [("succeeded", "2", resumed[0].data)]


@pytest.mark.served
def test_a_canceled_job_ends_its_stream_canceled(slow_service: ServerProcess) -> None:
    url = slow_service.url
    submit(url)
    prediction_id = submit(url)

    async def follow_and_cancel() -> list[ServerSentEvent]:
        events = []
        path = f"{url}/predict/{prediction_id}/events"
        async with (
            httpx.AsyncClient(timeout=10) as client,
            aconnect_sse(client, "GET", path) as source,
        ):
            async for event in source.aiter_sse():
                events.append(event)
                if event.event == "queued":
                    canceled = await client.post(f"{url}/predict/{prediction_id}/cancel")
                    assert canceled.status_code == 200
        return events

    events = asyncio.run(follow_and_cancel())
    assert [(e.event, e.id) for e in events] == [("queued", "0"), ("canceled", "2")]
    assert orjson.loads(events[-1].data) == poll_body(url, prediction_id)


@pytest.mark.served
def test_a_stream_ends_when_its_process_stops_and_resumes_on_another(
    tmp_path: Path, own_redis: EmbeddedRedis
) -> None:
    env = {"REDIS_URL": own_redis.url, "KEY_PREFIX": "sse-resume:"}
    with serve({**env, "WORKER_CONCURRENCY": "0"}, tmp_path / "first") as first:
        prediction_id = submit(first.url)
        path = f"/predict/{prediction_id}/events"
        with httpx.stream("GET", f"{first.url}{path}", timeout=10) as stream:
            lines = []
            for line in stream.iter_lines():
                lines.append(line)
                if line == "":  # the first event is whole: stop its process
                    threading.Thread(target=stop, args=(first.process,)).start()
        assert lines[:2] == ["event: queued", "id: 0"]
        assert first.process.wait(10) == 0
    with serve(env, tmp_path / "second") as second:
        resumed = asyncio.run(events_of(second.url, prediction_id, {"Last-Event-ID": "0"}))
        assert [e.event for e in resumed][-1] == "succeeded"
        assert "queued" not in [e.event for e in resumed]
        assert orjson.loads(resumed[-1].data) == poll_body(second.url, prediction_id)


def test_another_keys_job_and_an_unknown_id_are_404_before_any_stream(
    make_client: Callable[..., TestClient],
) -> None:
    api = make_client(api_keys=f"{KEY_A},{KEY_B}", worker_concurrency=1)
    accepted = api.post("/predict", json={"input": "x"}, headers={**ASYNC, **bearer(KEY_A)})
    prediction_id = accepted.json()["prediction_id"]
    polled = api.get(f"/predict/{prediction_id}?wait=5", headers=bearer(KEY_A))
    assert polled.json()["status"] == "succeeded"
    not_found = api.get(f"/predict/{prediction_id}", headers=bearer(KEY_B))
    assert not_found.status_code == 404
    for path in (prediction_id, "00000000-0000-4000-8000-000000000000"):
        answer = api.get(f"/predict/{path}/events", headers=bearer(KEY_B))
        assert answer.status_code == 404
        assert answer.headers["content-type"] == "application/json"
        assert answer.json() == not_found.json()
    assert api.get(f"/predict/{prediction_id}/events").status_code == 401
    # The owner's stream of a final job is whole at once: in-process is enough for it.
    own = api.get(f"/predict/{prediction_id}/events", headers=bearer(KEY_A))
    assert own.status_code == 200
    body = orjson.dumps(polled.json())
    assert own.content == b"event: succeeded\nid: 2\ndata: " + body + b"\n\n"
    assert api.get("/predict/not-a-uuid/events", headers=bearer(KEY_A)).status_code == 422
    bad = api.get(
        f"/predict/{prediction_id}/events", headers={**bearer(KEY_A), "Last-Event-ID": "x"}
    )
    assert bad.status_code == 422
    assert services_of(api).notifier.waiters == 0  # every stream let go of its waiter


def sse_streams_gauge(url: str) -> float:
    return scraped_total(url, "prediction_sse_streams", {})


@pytest.mark.served
def test_heartbeats_while_a_job_stays_queued(tmp_path: Path, own_redis: EmbeddedRedis) -> None:
    env = {
        "REDIS_URL": own_redis.url,
        "KEY_PREFIX": "sse-heartbeat:",
        "WORKER_CONCURRENCY": "0",
        "SSE_HEARTBEAT_S": "0.1",
        # The server's time limits on reading a request do not cut a response that lasts.
        "HEADER_TIMEOUT_S": "0.2",
        "BODY_TIMEOUT_S": "0.2",
    }
    with serve(env, tmp_path) as served:
        prediction_id = submit(served.url)
        lines: list[str] = []
        with httpx.stream("GET", f"{served.url}/predict/{prediction_id}/events", timeout=10) as r:
            # The stream waits from its first event, sent with the headers: so does the clock
            # (the scrape below takes time of its own).
            started = time.monotonic()
            assert r.status_code == 200
            assert r.headers["cache-control"] == "no-store"
            assert sse_streams_gauge(served.url) == 1
            for line in r.iter_lines():
                lines.append(line)
                if lines.count(":") == 6:
                    break
            waited = time.monotonic() - started
        assert lines[:3] == [
            "event: queued",
            "id: 0",
            f"data: {orjson.dumps(poll_body(served.url, prediction_id)).decode()}",
        ]
        assert lines[3:] == ["", ":"] * 6
        assert waited >= 0.55
        wait_until(
            lambda: sse_streams_gauge(served.url) == 0,
            timeout_s=5,
            what="the server letting go of the closed stream",
        )


STREAMS_PER_CLIENT = 50


async def stream_until_final(
    url: str, ids: list[str], when_all_open: Callable[[], None]
) -> list[list[ServerSentEvent]]:
    """One stream per id, all at once; `when_all_open` runs (in a thread) once every stream
    has its first event; then each stream is read to its end."""
    opened = 0
    all_open = asyncio.Event()
    # Clients of STREAMS_PER_CLIENT connections each: a pool's bookkeeping walks its
    # connections as each request ends, and one client of a thousand spends seconds on it.
    limits = httpx.Limits(max_connections=STREAMS_PER_CLIENT)
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(httpx.AsyncClient(timeout=30, limits=limits))
            for _ in range(0, len(ids), STREAMS_PER_CLIENT)
        ]

        async def one(client: httpx.AsyncClient, prediction_id: str) -> list[ServerSentEvent]:
            nonlocal opened
            events = []
            path = f"{url}/predict/{prediction_id}/events"
            async with aconnect_sse(client, "GET", path) as source:
                async for event in source.aiter_sse():
                    events.append(event)
                    if len(events) == 1:
                        opened += 1
                        if opened == len(ids):
                            all_open.set()
            return events

        streams = [
            asyncio.create_task(one(clients[n // STREAMS_PER_CLIENT], prediction_id))
            for n, prediction_id in enumerate(ids)
        ]
        async with asyncio.timeout(20):
            await all_open.wait()
        await asyncio.to_thread(when_all_open)
        async with asyncio.timeout(20):
            return await asyncio.gather(*streams)


@pytest.mark.served
def test_a_thousand_streams_ride_one_subscription(tmp_path: Path) -> None:
    env = {"KEY_PREFIX": "sse-many:"}
    channel = Keys(env["KEY_PREFIX"]).shards[0].done_channel
    with (
        # Its own Redis: every client of it is this test's.
        EmbeddedRedis(tmp_path / "redis", port=free_port(), appendonly=False) as server,
        redis.Redis.from_url(server.url) as client,
        serve({**env, "REDIS_URL": server.url, "WORKER_CONCURRENCY": "0"}, tmp_path / "api") as api,
        ExitStack() as workers,
    ):
        batch = httpx.post(
            f"{api.url}/predict/batch", json={"inputs": ["x"] * 1000}, headers=ASYNC, timeout=30
        )
        assert batch.status_code == 202, batch.text
        ids = [item["prediction_id"] for item in batch.json()["predictions"]]
        before = len(client.client_list())
        seen: dict[str, Any] = {}

        def check_then_run_the_jobs() -> None:
            seen["numsub"] = client.pubsub_numsub(channel)
            seen["pubsub"] = len(client.client_list(_type="pubsub"))
            seen["clients"] = len(client.client_list())
            seen["gauge"] = sse_streams_gauge(api.url)
            # Consumers in another process of the deployment: the jobs run now.
            workers.enter_context(serve({**env, "REDIS_URL": server.url}, tmp_path / "workers"))

        streams = asyncio.run(stream_until_final(api.url, ids, check_then_run_the_jobs))

    # While 1,000 streams waited: one subscription (the serving process's), and hardly a
    # connection more than before they opened.
    assert seen["numsub"] == [(channel.encode(), 1)]
    assert seen["pubsub"] == 1
    assert seen["gauge"] == 1000
    assert seen["clients"] - before < 20, (before, seen["clients"])
    assert len(streams) == 1000
    for events in streams:
        assert (events[0].event, events[0].id) == ("queued", "0")
        assert (events[-1].event, events[-1].id) == ("succeeded", "2")


def test_the_stream_is_documented(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/predict/{prediction_id}/events"]
    responses = operation["get"]["responses"]
    assert set(responses) >= {"200", "204", "404", "422", "503"}
    assert set(responses["200"]["content"]) == {"text/event-stream"}
    assert set(responses["404"]["content"]) == {"application/json"}
    header = {p["name"]: p for p in operation["get"]["parameters"]}["Last-Event-ID"]
    assert (header["in"], header["schema"]["type"], header["schema"]["minimum"]) == (
        "header",
        "integer",
        0,
    )


def next_event(lines: Iterator[str]) -> list[str]:
    """The lines of the next event or comment, up to the blank line that ends it."""
    block = []
    while (line := next(lines)) != "":
        block.append(line)
    return block


@pytest.mark.served
def test_a_stream_waits_out_a_redis_restart(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path / "redis", port=free_port(), appendonly=True) as server:
        env = {"REDIS_URL": server.url, "WORKER_CONCURRENCY": "0", "SSE_HEARTBEAT_S": "0.1"}
        with serve(env, tmp_path / "api") as api:
            prediction_id = submit(api.url)
            path = f"{api.url}/predict/{prediction_id}/events"
            with httpx.stream("GET", path, timeout=10) as stream:
                lines = stream.iter_lines()
                assert next_event(lines)[0] == "event: queued"
                server.stop()
                # Heartbeats go on while Redis is away (each one's read fails).
                assert [next_event(lines) for _ in range(3)] == [[":"]] * 3
                server.start()
                cancel = f"{path.removesuffix('/events')}/cancel"
                wait_until(
                    lambda: httpx.post(cancel).status_code == 200,
                    what="a cancel once Redis is back",
                )
                rest = [line for line in lines if line not in (":", "")]  # to the stream's end
    assert rest[:2] == ["event: canceled", "id: 2"]
    assert orjson.loads(rest[2].removeprefix("data: "))["status"] == "canceled"
