"""Thousands of clients that dribble their request heads, one header line at a time, against
one gunicorn worker: every one is cut off after HEADER_TIMEOUT_S, while a normal client beside
them keeps getting answers. Its latencies are printed, not asserted: speed is measured by the
benchmarks, not here."""

import asyncio
import os
import resource
import statistics
import time
from collections import Counter
from collections.abc import Iterator

import pytest
import uvloop

from service.server.embedded_redis import EmbeddedRedis
from service.server.process import ServerProcess
from tests.support.metrics import scraped_total
from tests.support.served import serve

pytestmark = pytest.mark.served

DRIBBLERS = 2000
HEADER_TIMEOUT_S = 3.0
# Slow clients seen in the wild send a line every few seconds; faster here, so that each sends
# a few lines (each one would have kept its connection open) before its time is up, and not in
# step with the timeout, so that few lines cross the server's close.
LINE_EVERY_S = 0.8
# Descriptors beyond the dribblers' sockets: the interpreter's, Redis's, the log's.
SPARE_FDS = 512
# libuv counts a timer from its loop's clock as of the start of the loop's iteration, which can be
# that iteration's work behind: a cut may come that much early.
EARLY_S = 0.05
# Time allowed past the timeout for all the cuts to reach their clients on a busy machine.
SLACK_S = 10.0
# A normal client gets far more answers than this in the cut-off window (at least
# HEADER_TIMEOUT_S): one answer every 100 ms would be a server stalled by the dribblers.
MIN_NORMAL_ANSWERS = 30
BODY = b'{"input": "some_input_data"}'
PREDICT = (
    b"POST /predict HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
    b"content-length: %d\r\n\r\n%s" % (len(BODY), BODY)
)


def raise_descriptor_limit(needed: int) -> tuple[int, int]:
    """Raise this process's soft limit on open files (the served process inherits it) to
    `needed`; the limits before. Skip, or fail under CI, if the hard limit is lower."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed or soft == resource.RLIM_INFINITY:
        return soft, hard
    if hard != resource.RLIM_INFINITY and hard < needed:
        reason = f"{needed} open files needed, and the hard limit (ulimit -Hn) is {hard}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    return soft, hard


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, redis_server: EmbeddedRedis
) -> Iterator[ServerProcess]:
    before = raise_descriptor_limit(DRIBBLERS + SPARE_FDS)
    env = {
        "REDIS_URL": redis_server.url,
        "KEY_PREFIX": "served-slow-clients:",
        "HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
    }
    try:
        with serve(env, tmp_path_factory.mktemp("served-slow-clients")) as server:
            yield server
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, before)


async def dribble(port: int) -> tuple[str, float]:
    """A request line, then one header line every LINE_EVERY_S until the server answers or
    closes: how it ended (`408`; `eof`; `reset` when a line crossed the server's close, which
    loses the 408 the client had not read; `other`), and how long after it began to
    connect (the server's clock starts later, when it accepts the connection)."""
    start = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\n")
    try:
        for line in range(10**6):
            try:
                first = await asyncio.wait_for(reader.read(65536), LINE_EVERY_S)
            except TimeoutError:
                writer.write(b"X-Dribble-%d: x\r\n" % line)
                continue
            answer = first + await reader.read()
            if not answer:
                return "eof", time.monotonic() - start
            if answer.startswith(b"HTTP/1.1 408 "):
                return "408", time.monotonic() - start
            return "other", time.monotonic() - start
    except ConnectionError:
        return "reset", time.monotonic() - start
    finally:
        writer.close()
    raise AssertionError("unreachable: the loop returns")


async def read_status(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    await reader.readexactly(length)
    return int(head.split(b" ", 2)[1])


async def normal_client(port: int, done: asyncio.Event) -> list[float]:
    """Sync predictions back to back on one kept-alive connection until `done`: each one's
    latency in seconds."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    latencies = []
    try:
        while not done.is_set():
            start = time.perf_counter()
            writer.write(PREDICT)
            assert await read_status(reader) == 200
            latencies.append(time.perf_counter() - start)
    finally:
        writer.close()
    return latencies


async def dribblers_beside_a_normal_client(
    port: int,
) -> tuple[list[tuple[str, float]], list[float], float]:
    dribblers = [asyncio.ensure_future(dribble(port)) for _ in range(DRIBBLERS)]
    done = asyncio.Event()
    normal = asyncio.ensure_future(normal_client(port, done))
    start = time.monotonic()
    outcomes = await asyncio.gather(*dribblers)
    window_s = time.monotonic() - start
    done.set()
    return outcomes, await normal, window_s


def head_cuts(served: ServerProcess) -> float:
    return scraped_total(served.url, "http_connections_timed_out_total", {"phase": "head"})


def test_thousands_of_dribbling_clients_are_cut_off_and_a_normal_client_is_served(
    served: ServerProcess,
) -> None:
    cuts_before = head_cuts(served)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        outcomes, latencies, window_s = runner.run(dribblers_beside_a_normal_client(served.port))
    cuts = head_cuts(served) - cuts_before

    ends = Counter(end for end, _ in outcomes)
    times = sorted(elapsed for _, elapsed in outcomes)
    ms = sorted(latency * 1000 for latency in latencies)
    percentiles = statistics.quantiles(ms, n=100, method="inclusive")
    print(
        f"\n{DRIBBLERS} dribblers, HEADER_TIMEOUT_S={HEADER_TIMEOUT_S}: ends {dict(ends)}, "
        f"cut after {times[0]:.2f}-{times[-1]:.2f} s (median {statistics.median(times):.2f} s), "
        f"counted by the server {cuts:.0f}"
    )
    print(
        f"normal client: {len(ms)} answers in {window_s:.2f} s; latency ms p50 "
        f"{percentiles[49]:.2f} p90 {percentiles[89]:.2f} p99 {percentiles[98]:.2f} "
        f"max {ms[-1]:.2f}"
    )
    assert set(ends) <= {"408", "eof", "reset"}, dict(ends)
    assert cuts == DRIBBLERS
    assert times[0] >= HEADER_TIMEOUT_S - EARLY_S
    assert times[-1] < HEADER_TIMEOUT_S + SLACK_S
    assert len(ms) >= MIN_NORMAL_ANSWERS
