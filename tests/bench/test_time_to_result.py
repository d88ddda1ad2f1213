"""The time-to-result client's event streams and webhooks against a small HTTP/1.1 stand-in for
the API started here: it accepts submits, streams events in chunks, and delivers webhooks to the
client's receiver as the API does. Assertions are on counts and lower bounds, never on speed."""

import asyncio
import time
from collections.abc import Callable

import orjson
import pytest
import uvloop

from bench import scenarios, time_to_result
from bench.http1 import ProtocolViolationError
from bench.time_to_result import Sample, Strategy, final_event, head_fields, sample, summarize

JOB_ID = "3f1c1a52-6b9e-4c57-9b7c-2f7d7f7d0001"
MODEL_S = 0.02


def answer(status: int, body: bytes, extra: str = "") -> bytes:
    return (f"HTTP/1.1 {status} X\r\n{extra}Content-Length: {len(body)}\r\n\r\n").encode() + body


def chunked(*chunks: bytes) -> bytes:
    body = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks)
    return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body + b"0\r\n\r\n"


def event(name: str, event_id: int, data: dict[str, str]) -> bytes:
    return b"event: %s\r\nid: %d\r\ndata: %s\r\n\r\n" % (
        name.encode(),
        event_id,
        orjson.dumps(data),
    )


async def deliver(url: str, prediction_id: str, headers: str) -> None:
    """POST a completed event to a webhook URL, as the API's dispatcher does."""
    host_port = url.removeprefix("http://").split("/")[0]
    host, port = host_port.split(":")
    body = orjson.dumps(
        {
            "type": "prediction.completed",
            "timestamp": "2026-01-01T00:00:00Z",
            "data": {"prediction_id": prediction_id, "status": "succeeded", "result": "1"},
        }
    )
    reader, writer = await asyncio.open_connection(host, int(port))
    head = f"POST /hook HTTP/1.1\r\nHost: {host_port}\r\n{headers}Content-Length: {len(body)}\r\n"
    writer.write(head.encode() + b"\r\n" + body)
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 204")
    writer.close()


class Api:
    """Submits answer 202 with a new id; `events` answers GET /predict/{id}/events; each
    webhook asked for is delivered `deliveries` times, MODEL_S after its submit."""

    def __init__(
        self,
        events: Callable[[str], bytes] | None = None,
        deliveries: int = 0,
        signed: bool = True,
    ) -> None:
        self.events = events
        self.deliveries = deliveries
        self.signed = signed
        self.jobs = 0
        self.background: set[asyncio.Task[None]] = set()

    async def respond(self, head: bytes, body: bytes) -> bytes:
        method, path = head.split(b" ")[:2]
        if method == b"POST":
            self.jobs += 1
            prediction_id = f"{JOB_ID[:-4]}{self.jobs:04d}"
            webhook = orjson.loads(body).get("webhook")
            for _ in range(self.deliveries if webhook else 0):
                self._later(webhook, prediction_id)
            accepted = orjson.dumps({"prediction_id": prediction_id, "status": "queued"})
            return answer(202, accepted, f"Location: /predict/{prediction_id}\r\n")
        if path.endswith(b"/events"):
            if self.events is None:
                return answer(404, b'{"error": "Not found."}')
            return self.events(path.decode().split("/")[2])
        return answer(200, b'{"status": "succeeded", "result": "1"}')

    def _later(self, url: str, prediction_id: str) -> None:
        async def delayed() -> None:
            await asyncio.sleep(MODEL_S)
            headers = "webhook-id: msg_1\r\nwebhook-timestamp: 1\r\n"
            headers += "webhook-signature: v1,c2ln\r\n" if self.signed else ""
            await deliver(url, prediction_id, headers)

        task = asyncio.get_running_loop().create_task(delayed())
        self.background.add(task)
        task.add_done_callback(self.background.discard)


async def against(api: Api, spec: str, jobs: int = 10) -> Sample:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                length = int(head_fields(head[:-4])[1].get(b"content-length", b"0"))
                writer.write(await api.respond(head, await reader.readexactly(length)))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        return await sample(
            f"http://127.0.0.1:{port}", Strategy.parse(spec), rate_per_s=100, duration_s=jobs / 100
        )
    finally:
        await asyncio.gather(*api.background)
        server.close()


def test_the_final_event_counts_only_once_complete() -> None:
    queued = event("queued", 0, {"status": "queued"})
    done = event("succeeded", 2, {"status": "succeeded"})
    assert final_event(queued + b": ping\r\n\r\n") is None
    assert final_event(queued + done[:-2]) is None  # its blank line has not arrived
    assert final_event(queued + done) == b"succeeded"
    assert final_event(b"event: failed\nid: 2\ndata: {}\n\n") == b"failed"
    assert final_event(b'data: {"event: succeeded"}\n\n') is None


def stream(prediction_id: str) -> bytes:
    # The final event split across two chunks: its time is when the second arrives.
    done = event("succeeded", 2, {"prediction_id": prediction_id, "status": "succeeded"})
    return chunked(event("queued", 0, {"status": "queued"}), b": ping\n\n", done[:9], done[9:])


def test_an_event_stream_is_read_to_its_final_event() -> None:
    measured = uvloop.run(against(Api(events=stream), "sse"))
    assert measured.supported
    assert len(measured.finished) == measured.jobs == 10
    assert all(requests == 1 for _, requests in measured.finished)
    assert summarize([measured]).kind == "sse"


def test_a_stream_that_ends_without_a_success_fails_the_run() -> None:
    def failed(_: str) -> bytes:
        return chunked(event("failed", 2, {"status": "failed"}))

    with pytest.raises(RuntimeError, match="without a success"):
        uvloop.run(against(Api(events=failed), "sse"))


def test_a_build_without_event_streams_is_not_supported() -> None:
    measured = uvloop.run(against(Api(), "sse"))
    assert not measured.supported
    assert measured.finished == ()


def test_webhooks_are_timed_at_their_arrival() -> None:
    measured = uvloop.run(against(Api(deliveries=1), "webhook"))
    assert measured.supported
    assert len(measured.finished) == 10
    assert all(seconds >= MODEL_S - 0.005 for seconds, _ in measured.finished)
    assert summarize([measured]).polls_per_result == 1.0


def test_the_receiver_counts_every_delivery_and_times_the_first() -> None:
    async def twice() -> tuple[float, float, int]:
        receiver = time_to_result._Receiver()
        await receiver.start()
        try:
            arrival = receiver.arrival(JOB_ID)
            signed = "webhook-id: msg_1\r\nwebhook-signature: v1,c2ln\r\n"
            await deliver(receiver.url, JOB_ID, signed)
            between = time.perf_counter()
            await deliver(receiver.url, JOB_ID, signed)
            return await arrival, between, receiver.deliveries[JOB_ID]
        finally:
            await receiver.close()

    first, between, deliveries = uvloop.run(twice())
    assert first < between
    assert deliveries == 2


def test_a_build_that_delivers_no_webhook_is_not_supported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(time_to_result, "WEBHOOK_PROBE_GRACE_S", 0.2)
    api = Api(deliveries=0)
    measured = uvloop.run(against(api, "webhook"))
    assert not measured.supported
    assert api.jobs == 1  # the probe only


def test_an_unsigned_delivery_fails_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time_to_result, "WEBHOOK_PROBE_GRACE_S", 0.2)
    with pytest.raises(ProtocolViolationError, match="Standard Webhooks"):
        uvloop.run(against(Api(deliveries=1, signed=False), "webhook", jobs=2))


def test_a_strategy_known_to_be_unsupported_is_not_run_again() -> None:
    """A build that did not offer a strategy in the first round is not asked again: nothing
    listens on port 1, and only the strategy that is run fails to connect."""
    names = {Strategy.parse(spec).name for spec in ("sse", "webhook", "longpoll:2s")}
    skipped = scenarios.time_to_result("http://127.0.0.1:1", ("sse", "webhook"), 20, 0.1, names)
    assert [(s.strategy, s.supported, s.jobs, s.kind) for s in skipped] == [
        ("SSE events", False, 2, "sse"),
        ("webhook", False, 2, "webhook"),
    ]
    with pytest.raises(ConnectionRefusedError):
        scenarios.time_to_result("http://127.0.0.1:1", ("sse", "webhook"), 20, 0.1, {"webhook"})
