"""Time to result: from the moment a job was meant to be submitted until the client holds its
result, for one way of learning it, in an open loop: short polls, long-poll, Server-Sent Events
(`GET /predict/{id}/events`, the result in the final event), or a webhook (the result POSTed to
a receiver this module runs on 127.0.0.1; the clock stops when the delivery arrives).

Jobs start on a fixed schedule whether or not earlier ones finished, and each job's clock starts
at its scheduled time, so a server (or a client) that falls behind shows up in the figure instead
of quietly slowing the arrivals (coordinated omission). A client that cannot keep its own
schedule measures itself: the run fails instead of reporting it.
"""

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import NamedTuple
from urllib.parse import urlsplit

import orjson

from bench.http1 import ProtocolViolationError, parse_head, request
from bench.results import StrategyKind, TimeToResult
from bench.stats import percentile
from service.jobs.status import JobStatus

# A client whose median submit starts this late behind its schedule cannot keep it: it, not the
# server, sets the pace. (Its p99 is reported: a shared core delays some submits, and since
# each job's clock starts at its scheduled time, that delay is in the figure, not hidden.)
MAX_CLIENT_MEDIAN_LAG_S = 0.02
BODY = b'{"input": "some_input_data"}'
# A build that has not delivered a webhook this long after its job is final delivers none.
WEBHOOK_PROBE_GRACE_S = 2.0
# The states after which an event stream ends.
FINAL_EVENTS = frozenset(status.value.encode() for status in JobStatus if status.is_final)


class ClientSaturatedError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Strategy:
    name: str
    interval_s: float | None = None  # short polling: sleep this long between polls
    wait_s: float | None = None  # long-poll: GET /predict/{id}?wait=S
    kind: StrategyKind = "poll"

    @classmethod
    def parse(cls, spec: str) -> "Strategy":
        """`poll:50ms`, `longpoll:2s`, `sse` or `webhook`."""
        if spec == "sse":
            return cls("SSE events", kind="sse")
        if spec == "webhook":
            return cls("webhook", kind="webhook")
        kind, _, amount = spec.partition(":")
        if kind not in ("poll", "longpoll") or not amount:
            raise ValueError(
                f"unknown strategy {spec!r}: use poll:<interval>, longpoll:<s>, sse or webhook"
            )
        seconds = float(amount.removesuffix("ms")) / 1000 if amount.endswith("ms") else None
        seconds = seconds if seconds is not None else float(amount.removesuffix("s"))
        if kind == "poll":
            return cls(f"poll every {amount}", interval_s=seconds)
        return cls(f"long-poll wait={amount}", wait_s=seconds, kind="long-poll")


class _UnsupportedError(Exception):
    """The build does not offer this way of learning a result (it ignores `wait`, has no event
    stream, or sends no webhook)."""


def final_event(events: bytes) -> bytes | None:
    """The name of the final event among complete events of a stream's text (`event:` lines,
    each event ended by a blank line), or None while there is none."""
    complete, _, _ = events.replace(b"\r\n", b"\n").rpartition(b"\n\n")
    for line in complete.split(b"\n"):
        name, _, value = line.partition(b":")
        if name == b"event" and value.strip() in FINAL_EVENTS:
            return value.strip()
    return None


def head_fields(head: bytes) -> tuple[int, dict[bytes, bytes]]:
    """A head's status (or 0 for a request) and its fields, lower-case names."""
    first, *lines = head.split(b"\r\n")
    words = first.split(b" ")
    status = int(words[1]) if first.startswith(b"HTTP/1.") and words[1:2] else 0
    fields = {}
    for line in lines:
        name, _, value = line.partition(b":")
        fields[name.strip().lower()] = value.strip()
    return status, fields


class _Connection:
    """One keep-alive connection, one request at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def exchange(self, raw: bytes) -> tuple[int, dict[bytes, bytes], bytes]:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status, length, headers = parse_head(head[:-4], (b"location",))
        return status, headers, await self.reader.readexactly(length)

    async def follow(self, raw: bytes) -> float:
        """Send a GET of an event stream and read it to its end (a chunked body); when the
        final event arrived."""
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status, fields = head_fields(head[:-4])
        if status != 200:
            body = await self.reader.readexactly(int(fields.get(b"content-length", b"0")))
            if status in (404, 405):
                raise _UnsupportedError
            raise RuntimeError(f"event stream answered {status}: {body!r}")
        if fields.get(b"transfer-encoding") != b"chunked":
            raise ProtocolViolationError(f"an event stream not chunked: {head!r}")
        events, final_at, final = b"", 0.0, None
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            events += (await self.reader.readexactly(size + 2))[:-2]
            if final is None and (final := final_event(events)) is not None:
                final_at = time.perf_counter()
            if not size:
                break
        if final != b"succeeded":
            raise RuntimeError(f"event stream ended without a success: {events[-300:]!r}")
        return final_at


@dataclass
class _Client:
    """Keep-alive connections to one server, each held by one job from its submit to its
    result (a job makes one request at a time) and then handed to the next job.

    The harness's own client (bench/http1.py), not httpx: at a 50 ms model, httpx's few hundred
    microseconds per request on a shared core were part of every time to result measured."""

    host: str
    port: int
    idle: list[_Connection] = field(default_factory=list)
    made: list[_Connection] = field(default_factory=list)

    async def take(self) -> _Connection:
        if self.idle:
            return self.idle.pop()
        connection = _Connection(*await asyncio.open_connection(self.host, self.port))
        self.made.append(connection)
        return connection

    def give_back(self, connection: _Connection) -> None:
        self.idle.append(connection)

    def close(self) -> None:
        for connection in self.made:
            connection.writer.close()


SUBMIT_HEADERS = "Content-Type: application/json\r\nasync_mode: true\r\n"
NO_CONTENT = b"HTTP/1.1 204 No Content\r\n\r\n"


@dataclass
class _Receiver:
    """Webhook deliveries on 127.0.0.1, answered 204 at once; each job's first arrival is its
    time to result, and every delivery of it is counted (delivery is at least once)."""

    url: str = ""
    server: asyncio.Server | None = None
    arrivals: dict[str, "asyncio.Future[float]"] = field(default_factory=dict)
    deliveries: Counter[str] = field(default_factory=Counter)
    failure: BaseException | None = None
    # A sender keeps its connections open: each is closed at the end, and its handler awaited.
    handlers: dict["asyncio.Task[None]", asyncio.StreamWriter] = field(default_factory=dict)

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/hook"

    def submit_body(self) -> bytes:
        return orjson.dumps(
            {
                "input": "some_input_data",
                "webhook": self.url,
                "webhook_events_filter": ["completed"],
            }
        )

    def arrival(self, prediction_id: str) -> "asyncio.Future[float]":
        return self.arrivals.setdefault(prediction_id, asyncio.get_running_loop().create_future())

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        assert handler is not None
        self.handlers[handler] = writer
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                arrived = time.perf_counter()
                _, fields = head_fields(head[:-4])
                body = await reader.readexactly(int(fields.get(b"content-length", b"0")))
                writer.write(NO_CONTENT)
                self._delivered(arrived, fields, body)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            self.handlers.pop(handler, None)

    def _delivered(self, arrived: float, fields: dict[bytes, bytes], body: bytes) -> None:
        try:
            if not fields.get(b"webhook-id") or not fields.get(b"webhook-signature"):
                raise ProtocolViolationError(
                    f"a delivery without Standard Webhooks headers: {body!r}"
                )
            delivered = orjson.loads(body)
            prediction_id, status = delivered["data"]["prediction_id"], delivered["data"]["status"]
        except (ValueError, KeyError, TypeError, ProtocolViolationError) as exc:
            self.failure = self.failure or exc
            return
        if status != "succeeded":
            self.failure = self.failure or RuntimeError(f"a webhook of a {status} job: {body!r}")
        self.deliveries[prediction_id] += 1
        future = self.arrival(prediction_id)
        if not future.done():
            future.set_result(arrived)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        handlers = list(self.handlers.items())
        for _, writer in handlers:
            writer.close()
        await asyncio.gather(*(handler for handler, _ in handlers))


class _Finished(NamedTuple):
    seconds: float
    requests: int  # besides the submit: polls, or the event stream
    prediction_id: str


async def _submit(connection: _Connection, client: _Client, body: bytes) -> tuple[str, str]:
    """The job's Location and id."""
    status, headers, answer = await connection.exchange(
        request("POST", client.host, client.port, "/predict", body, SUBMIT_HEADERS)
    )
    if status != 202:
        raise RuntimeError(f"submit answered {status}: {answer!r}")
    if b"location" not in headers:
        raise ProtocolViolationError(f"a 202 without Location: {answer!r}")
    return headers[b"location"].decode(), str(orjson.loads(answer)["prediction_id"])


async def _poll(connection: _Connection, client: _Client, location: str, strategy: Strategy) -> int:
    """Poll until the result is in; how many polls it took."""
    if strategy.wait_s is not None:
        location += f"?wait={strategy.wait_s:g}"
    poll = request("GET", client.host, client.port, location)
    polls = 0
    while True:
        asked = time.perf_counter()
        status, _, body = await connection.exchange(poll)
        polls += 1
        if status == 200:
            return polls
        if status != 202:
            raise RuntimeError(f"poll answered {status}: {body!r}")
        if strategy.wait_s is not None and time.perf_counter() - asked < strategy.wait_s / 2:
            raise _UnsupportedError
        if strategy.interval_s is not None:
            await asyncio.sleep(strategy.interval_s)


async def _one_job(
    client: _Client, strategy: Strategy, due: float, lags: list[float], receiver: _Receiver
) -> _Finished:
    await asyncio.sleep(max(0.0, due - time.perf_counter()))
    lags.append(time.perf_counter() - due)
    connection = await client.take()
    body = receiver.submit_body() if strategy.kind == "webhook" else BODY
    location, prediction_id = await _submit(connection, client, body)
    if strategy.kind == "webhook":
        client.give_back(connection)
        return _Finished(await receiver.arrival(prediction_id) - due, 0, prediction_id)
    if strategy.kind == "sse":
        final_at = await connection.follow(
            request("GET", client.host, client.port, f"{location}/events")
        )
        client.give_back(connection)
        return _Finished(final_at - due, 1, prediction_id)
    polls = await _poll(connection, client, location, strategy)
    client.give_back(connection)
    return _Finished(time.perf_counter() - due, polls, prediction_id)


async def _delivers_webhooks(client: _Client, receiver: _Receiver) -> bool:
    """Whether the build delivers a webhook: one job, polled to its end, then a grace period."""
    connection = await client.take()
    location, prediction_id = await _submit(connection, client, receiver.submit_body())
    await _poll(connection, client, location, Strategy("probe", interval_s=0.01))
    client.give_back(connection)
    try:
        await asyncio.wait_for(
            asyncio.shield(receiver.arrival(prediction_id)), WEBHOOK_PROBE_GRACE_S
        )
    except TimeoutError:
        if receiver.failure is not None:  # it delivered, but not as the API promises
            raise receiver.failure from None
        return False
    return True


@dataclass(frozen=True, slots=True)
class Sample:
    """One round of one strategy against one build: every job's time to result."""

    strategy: str
    jobs: int
    supported: bool
    # (seconds to result, requests it took besides the submit: polls, the event stream, or
    # the webhook's deliveries)
    finished: tuple[tuple[float, int], ...]
    client_lag_p99_s: float
    kind: StrategyKind = "poll"

    @classmethod
    def unsupported(cls, strategy: Strategy, jobs: int) -> "Sample":
        return cls(strategy.name, jobs, False, (), 0.0, strategy.kind)


def jobs_of(rate_per_s: float, duration_s: float) -> int:
    """The jobs of one round: rate_per_s for duration_s, one at least."""
    return max(1, int(rate_per_s * duration_s))


async def sample(url: str, strategy: Strategy, *, rate_per_s: float, duration_s: float) -> Sample:
    jobs = jobs_of(rate_per_s, duration_s)
    lags: list[float] = []
    parts = urlsplit(url)
    client = _Client(parts.hostname or "127.0.0.1", parts.port or 80)
    receiver = _Receiver()
    try:
        if strategy.kind == "webhook":
            await receiver.start()
            if not await _delivers_webhooks(client, receiver):
                return Sample.unsupported(strategy, jobs)
        start = time.perf_counter() + 0.05
        tasks = [
            asyncio.create_task(
                asyncio.wait_for(
                    _one_job(client, strategy, start + i / rate_per_s, lags, receiver), 30
                )
            )
            for i in range(jobs)
        ]
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        client.close()
        await receiver.close()
    unsupported = any(isinstance(o, _UnsupportedError) for o in outcomes)
    for outcome in outcomes:
        if isinstance(outcome, BaseException) and not unsupported:
            raise outcome
    if receiver.failure is not None:
        raise receiver.failure
    lags.sort()
    lag_p50 = percentile(lags, 50, empty=0.0)
    if lag_p50 > MAX_CLIENT_MEDIAN_LAG_S:
        raise ClientSaturatedError(
            f"{strategy.name} against {url}: the client started half its submits more than "
            f"{lag_p50 * 1000:.0f} ms late at {rate_per_s:.0f} jobs/s; lower BENCH_TTR_RATE"
        )
    return Sample(
        strategy=strategy.name,
        jobs=jobs,
        supported=not unsupported,
        finished=tuple(
            (
                o.seconds,
                receiver.deliveries[o.prediction_id] if strategy.kind == "webhook" else o.requests,
            )
            for o in outcomes
            if isinstance(o, _Finished)
        ),
        client_lag_p99_s=percentile(lags, 99, empty=0.0),
        kind=strategy.kind,
    )


def summarize(samples: list[Sample]) -> TimeToResult:
    """The rounds of one strategy against one build, their jobs together: a p99 of a few
    hundred jobs rather than of one round's few dozen."""
    finished = [job for round_ in samples for job in round_.finished]
    ms = sorted(seconds * 1000 for seconds, _ in finished)
    return TimeToResult(
        strategy=samples[0].strategy,
        jobs=sum(s.jobs for s in samples),
        completed=len(finished),
        supported=all(s.supported for s in samples),
        p50_ms=percentile(ms, 50),
        p90_ms=percentile(ms, 90),
        p99_ms=percentile(ms, 99),
        polls_per_result=sum(p for _, p in finished) / len(finished) if finished else float("nan"),
        client_lag_p99_ms=max(s.client_lag_p99_s for s in samples) * 1000,
        rounds=len(samples),
        kind=samples[0].kind,
    )


async def measure(
    url: str, strategy: Strategy, *, rate_per_s: float, duration_s: float
) -> TimeToResult:
    """One round."""
    return summarize([await sample(url, strategy, rate_per_s=rate_per_s, duration_s=duration_s)])
