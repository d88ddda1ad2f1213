"""The fixed-rate client against a small HTTP/1.1 server started here, which can stall, fail
or answer without Content-Length. Assertions are on counts and lower bounds, never on speed."""

import asyncio
from collections.abc import Awaitable, Callable

import pytest
import uvloop

from bench.http1 import ProtocolViolationError
from bench.open_loop import FixedRateResult, measure

Answer = Callable[[int], Awaitable[bytes]]  # the n-th request received (from 1) -> response


def response(status: int, body: bytes = b"{}") -> bytes:
    return (
        f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def run_against(answer: Answer, **options: float) -> FixedRateResult:
    received = 0
    handlers: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal received
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                await reader.readexactly(length)
                received += 1
                writer.write(await answer(received))
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()
            await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        return await measure(
            f"http://127.0.0.1:{port}",
            body=b'{"input": "x"}',
            rate_per_s=options.get("rate", 100),
            duration_s=options.get("duration", 0.5),
            max_connections=int(options.get("connections", 256)),
            timeout_s=5,
        )
    finally:
        # The client has closed its connections: each handler sees the end and closes its own.
        await asyncio.wait_for(asyncio.gather(*handlers), 5)
        server.close()
        await server.wait_closed()


def test_every_scheduled_request_is_answered_and_counted() -> None:
    async def ok(_: int) -> bytes:
        return response(200)

    result = uvloop.run(run_against(ok, rate=200, duration=0.5))
    assert result.scheduled == result.completed == len(result.ms) == 100
    assert result.errors == {}
    assert result.ms == sorted(result.ms)
    assert result.connections >= 1
    summary = result.summary()  # what the report holds of it
    assert (summary.scheduled, summary.completed, summary.errors) == (100, 100, {})
    assert summary.p99_ms == result.percentile_ms(99) <= summary.max_ms == result.ms[-1]
    assert summary.achieved_rate == result.achieved_rate


def test_a_stall_counts_from_the_schedule_not_from_the_send() -> None:
    # One connection: while the 5th answer stalls, the requests scheduled after it wait for the
    # connection. Counted from their scheduled times, the wait is in their latency.
    stall_s = 0.5

    async def stalls_once(n: int) -> bytes:
        if n == 5:
            await asyncio.sleep(stall_s)
        return response(200)

    result = uvloop.run(run_against(stalls_once, rate=100, duration=0.5, connections=1))
    assert result.completed == 50
    assert result.connections == 1
    # Request 5+k was scheduled k/100 s after request 5 and could not leave before the stall
    # ended, so at least 10 requests waited more than stall_s - 0.1 s. (The 5 ms spare is the
    # event loop's timer resolution: a sleep may end that much early.)
    stalled_ms = stall_s * 1000 - 5
    assert sum(ms >= stalled_ms - 100 for ms in result.ms) >= 10
    assert result.percentile_ms(99) >= stalled_ms
    assert result.percentile_ms(90) >= stalled_ms - 100


def test_non_2xx_answers_are_counted_as_errors_by_status() -> None:
    async def every_other_fails(n: int) -> bytes:
        return response(503 if n % 2 else 200)

    result = uvloop.run(run_against(every_other_fails, rate=100, duration=0.4, connections=1))
    assert result.completed == 40
    assert result.errors == {"503": 20}


def test_an_answer_without_content_length_stops_the_run() -> None:
    async def chunked(_: int) -> bytes:
        return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"

    with pytest.raises(ProtocolViolationError, match="Transfer-Encoding"):
        uvloop.run(run_against(chunked, rate=50, duration=0.2))
