"""A fixed-rate (open-loop) HTTP/1.1 client: requests leave on a fixed schedule whatever the
server does, and each request's latency counts from its scheduled time.

wrk, hey and Locust are closed loops: a stalled server stops their arrivals, and the stall
vanishes from the latency figures (coordinated omission). wrk2 and vegeta, the usual open-loop
tools, are not packaged here, and httpx tops out well below the rates needed, so this client
speaks HTTP/1.1 itself (bench/http1.py) over keep-alive `asyncio.Protocol` connections (run it
on uvloop).

A request takes an idle connection, or opens a new one up to a cap; at the cap it waits for one
to come free, its clock still running. A client that cannot keep its own schedule measures
itself: the run fails instead of reporting it.
"""

import asyncio
import contextlib
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from bench.http1 import ProtocolViolationError, parse_head, request
from bench.results import FixedRateRun
from bench.stats import percentile
from bench.time_to_result import ClientSaturatedError

# A client whose median request leaves this late behind its schedule cannot keep it.
MAX_CLIENT_MEDIAN_LAG_S = 0.005
MAX_CONNECTIONS = 256


@dataclass(frozen=True, slots=True)
class FixedRateResult:
    target_rate: float
    duration_s: float
    scheduled: int
    completed: int
    errors: dict[str, int]  # non-2xx answers by status, and requests with no answer
    ms: list[float]  # every answered request's latency from its scheduled time, sorted
    elapsed_s: float  # from the first scheduled send to the last answer
    connections: int
    client_lag_p50_ms: float
    client_lag_p99_ms: float

    @property
    def achieved_rate(self) -> float:
        return self.completed / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def percentile_ms(self, q: float) -> float:
        return percentile(self.ms, q)

    def summary(self) -> FixedRateRun:
        """What the report holds: the percentiles, not every latency."""
        return FixedRateRun(
            target_rate=self.target_rate,
            achieved_rate=self.achieved_rate,
            duration_s=self.duration_s,
            scheduled=self.scheduled,
            completed=self.completed,
            errors=self.errors,
            p50_ms=self.percentile_ms(50),
            p90_ms=self.percentile_ms(90),
            p99_ms=self.percentile_ms(99),
            p999_ms=self.percentile_ms(99.9),
            max_ms=self.ms[-1] if self.ms else float("nan"),
            connections=self.connections,
            client_lag_p50_ms=self.client_lag_p50_ms,
            client_lag_p99_ms=self.client_lag_p99_ms,
        )


class _Connection(asyncio.Protocol):
    def __init__(self, pool: "_Pool") -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.due: float | None = None  # the scheduled time of the request in flight

    def send(self, due: float) -> None:
        assert self.transport is not None
        self.due = due
        self.transport.write(self.pool.request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        try:
            status, length, _ = parse_head(bytes(self.buffer[:end]))
            if len(self.buffer) < end + 4 + length:
                return
            if len(self.buffer) > end + 4 + length or self.due is None:
                raise ProtocolViolationError("bytes beyond the answer to the one request sent")
        except ProtocolViolationError as exc:
            # Raised here, asyncio would only log it: the run stops on it instead.
            self.pool.fail(exc)
            assert self.transport is not None
            self.transport.close()
            return
        self.buffer.clear()
        due, self.due = self.due, None
        self.pool.answered(self, due, status)

    def connection_lost(self, exc: Exception | None) -> None:
        self.pool.lost(self)


@dataclass
class _Pool:
    host: str
    port: int
    request: bytes
    max_connections: int
    idle: list[_Connection] = field(default_factory=list)
    busy: set[_Connection] = field(default_factory=set)
    waiting: deque[float] = field(default_factory=deque)  # scheduled times
    connecting: set["asyncio.Task[None]"] = field(default_factory=set)
    made: list[_Connection] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    last_answer: float = 0.0
    failure: BaseException | None = None
    closed: bool = False
    settled: asyncio.Event = field(default_factory=asyncio.Event)  # nothing outstanding, or failed

    @property
    def open(self) -> int:
        return len(self.idle) + len(self.busy) + len(self.connecting)

    def submit(self, due: float) -> None:
        if self.idle:
            self._send(self.idle.pop(), due)
            return
        self.waiting.append(due)
        self._grow()

    def _grow(self) -> None:
        if not self.closed and self.open < self.max_connections:
            task = asyncio.get_running_loop().create_task(self._connect())
            self.connecting.add(task)
            task.add_done_callback(self.connecting.discard)

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            transport, connection = await loop.create_connection(
                lambda: _Connection(self), self.host, self.port
            )
        except OSError as exc:
            self.fail(exc)
            return
        # uvloop may return before it has called connection_made.
        connection.transport = transport
        self.made.append(connection)
        self._free(connection)

    def _send(self, connection: _Connection, due: float) -> None:
        self.busy.add(connection)
        connection.send(due)

    def _free(self, connection: _Connection) -> None:
        if self.waiting:
            self._send(connection, self.waiting.popleft())
        else:
            self.idle.append(connection)

    def answered(self, connection: _Connection, due: float, status: int) -> None:
        self.last_answer = time.perf_counter()
        self.latencies.append(self.last_answer - due)
        if not 200 <= status < 300:
            self.errors[str(status)] += 1
        self.busy.discard(connection)
        self._free(connection)
        if not self.outstanding:
            self.settled.set()

    def fail(self, exc: BaseException) -> None:
        self.failure = exc
        self.settled.set()

    def lost(self, connection: _Connection) -> None:
        if connection in self.idle:
            self.idle.remove(connection)
        if connection in self.busy:
            self.busy.discard(connection)
            if connection.due is not None:
                self.errors["connection lost"] += 1
        if self.waiting:
            self._grow()
        if not self.outstanding:
            self.settled.set()

    @property
    def outstanding(self) -> int:
        return len(self.busy) + len(self.waiting)

    def close(self) -> None:
        self.closed = True
        for task in self.connecting:
            task.cancel()
        for connection in self.made:
            if connection.transport is not None:
                connection.transport.close()


async def measure(
    url: str,
    *,
    rate_per_s: float,
    duration_s: float,
    body: bytes,
    path: str = "/predict",
    content_type: str = "application/json",
    max_connections: int = MAX_CONNECTIONS,
    timeout_s: float = 10.0,
) -> FixedRateResult:
    """POST `body` to `path` at `rate_per_s` for `duration_s`; answers still missing
    `timeout_s` after the last scheduled send count as errors ("no answer")."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    pool = _Pool(
        host,
        port,
        request("POST", host, port, path, body, f"Content-Type: {content_type}\r\n"),
        max_connections,
    )
    scheduled = max(1, int(rate_per_s * duration_s))
    lags: list[float] = []
    start = time.perf_counter() + 0.05
    try:
        sent = 0
        while sent < scheduled:
            now = time.perf_counter()
            due = start + sent / rate_per_s
            if pool.failure is not None:
                raise pool.failure
            if due > now:
                await asyncio.sleep(due - now)
                continue
            # Every request due by now leaves now: a late wake-up sends a burst, not fewer.
            while sent < scheduled and start + sent / rate_per_s <= now:
                due = start + sent / rate_per_s
                lags.append(now - due)
                pool.submit(due)
                sent += 1
        if pool.outstanding and pool.failure is None:
            pool.settled.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(pool.settled.wait(), timeout_s)
        if pool.failure is not None:
            raise pool.failure
        if pool.outstanding:
            pool.errors["no answer"] += pool.outstanding
    finally:
        pool.close()
        await asyncio.sleep(0)  # let the transports' close callbacks run
    lags.sort()
    lag_p50 = percentile(lags, 50)
    if lag_p50 > MAX_CLIENT_MEDIAN_LAG_S:
        raise ClientSaturatedError(
            f"fixed rate against {url}: the client sent half its requests more than "
            f"{lag_p50 * 1000:.1f} ms late at {rate_per_s:.0f} requests/s"
        )
    return FixedRateResult(
        target_rate=rate_per_s,
        duration_s=duration_s,
        scheduled=scheduled,
        completed=len(pool.latencies),
        errors=dict(pool.errors),
        ms=sorted(seconds * 1000 for seconds in pool.latencies),
        elapsed_s=max(0.0, pool.last_answer - start),
        connections=len(pool.made),
        client_lag_p50_ms=lag_p50 * 1000,
        client_lag_p99_ms=percentile(lags, 99) * 1000,
    )
