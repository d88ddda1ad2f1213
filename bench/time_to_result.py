"""Time to result: from the moment a job was meant to be submitted until the client holds its
result, for one polling strategy, in an open loop.

Jobs start on a fixed schedule whether or not earlier ones finished, and each job's clock starts
at its scheduled time, so a server (or a client) that falls behind shows up in the figure instead
of quietly slowing the arrivals (coordinated omission). A client that cannot keep its own
schedule measures itself: the run fails instead of reporting it.
"""

import asyncio
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from bench.http1 import ProtocolViolationError, parse_head, request
from bench.results import TimeToResult
from bench.stats import percentile

# A client whose median submit starts this late behind its schedule cannot keep it: it, not the
# server, sets the pace. (Its p99 is reported: a shared core delays some submits, and since
# each job's clock starts at its scheduled time, that delay is in the figure, not hidden.)
MAX_CLIENT_MEDIAN_LAG_S = 0.02
BODY = b'{"input": "some_input_data"}'


class ClientSaturatedError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Strategy:
    name: str
    interval_s: float | None = None  # short polling: sleep this long between polls
    wait_s: float | None = None  # long-poll: GET /predict/{id}?wait=S

    @classmethod
    def parse(cls, spec: str) -> "Strategy":
        """`poll:50ms` or `longpoll:2s`."""
        kind, _, amount = spec.partition(":")
        seconds = float(amount.removesuffix("ms")) / 1000 if amount.endswith("ms") else None
        seconds = seconds if seconds is not None else float(amount.removesuffix("s"))
        if kind == "poll":
            return cls(f"poll every {amount}", interval_s=seconds)
        if kind == "longpoll":
            return cls(f"long-poll wait={amount}", wait_s=seconds)
        raise ValueError(f"unknown polling strategy {spec!r}: use poll:<interval> or longpoll:<s>")


class _LongPollUnsupportedError(Exception):
    pass


class _Connection:
    """One keep-alive connection, one request at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def exchange(self, raw: bytes) -> tuple[int, dict[bytes, bytes], bytes]:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status, length, headers = parse_head(head[:-4], (b"location",))
        return status, headers, await self.reader.readexactly(length)


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


async def _one_job(
    client: _Client, strategy: Strategy, due: float, lags: list[float]
) -> tuple[float, int]:
    await asyncio.sleep(max(0.0, due - time.perf_counter()))
    lags.append(time.perf_counter() - due)
    connection = await client.take()
    status, headers, body = await connection.exchange(
        request("POST", client.host, client.port, "/predict", BODY, SUBMIT_HEADERS)
    )
    if status != 202:
        raise RuntimeError(f"submit answered {status}: {body!r}")
    if b"location" not in headers:
        raise ProtocolViolationError(f"a 202 without Location: {body!r}")
    location = headers[b"location"].decode()
    if strategy.wait_s is not None:
        location += f"?wait={strategy.wait_s:g}"
    poll = request("GET", client.host, client.port, location)
    polls = 0
    while True:
        asked = time.perf_counter()
        status, _, body = await connection.exchange(poll)
        polls += 1
        if status == 200:
            client.give_back(connection)
            return time.perf_counter() - due, polls
        if status != 202:
            raise RuntimeError(f"poll answered {status}: {body!r}")
        if strategy.wait_s is not None and time.perf_counter() - asked < strategy.wait_s / 2:
            raise _LongPollUnsupportedError
        if strategy.interval_s is not None:
            await asyncio.sleep(strategy.interval_s)


@dataclass(frozen=True, slots=True)
class Sample:
    """One round of one strategy against one build: every job's time to result."""

    strategy: str
    jobs: int
    supported: bool
    finished: tuple[tuple[float, int], ...]  # (seconds to result, requests it took)
    client_lag_p99_s: float


async def sample(url: str, strategy: Strategy, *, rate_per_s: float, duration_s: float) -> Sample:
    jobs = max(1, int(rate_per_s * duration_s))
    lags: list[float] = []
    parts = urlsplit(url)
    client = _Client(parts.hostname or "127.0.0.1", parts.port or 80)
    try:
        start = time.perf_counter() + 0.05
        tasks = [
            asyncio.create_task(
                asyncio.wait_for(_one_job(client, strategy, start + i / rate_per_s, lags), 30)
            )
            for i in range(jobs)
        ]
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        client.close()
    unsupported = any(isinstance(o, _LongPollUnsupportedError) for o in outcomes)
    for outcome in outcomes:
        if isinstance(outcome, BaseException) and not unsupported:
            raise outcome
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
        finished=tuple(o for o in outcomes if isinstance(o, tuple)),
        client_lag_p99_s=percentile(lags, 99, empty=0.0),
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
    )


async def measure(
    url: str, strategy: Strategy, *, rate_per_s: float, duration_s: float
) -> TimeToResult:
    """One round."""
    return summarize([await sample(url, strategy, rate_per_s=rate_per_s, duration_s=duration_s)])
