"""The connection-burst client of `make bench-settings`, against a real local server."""

import asyncio

import pytest

from bench.server_settings import EXPERIMENTS, _burst


async def _with_server(status: bytes, clients: int) -> dict[str, float]:
    answered = 0

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal answered
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 " + status + b"\r\ncontent-length: 0\r\n\r\n")
        await writer.drain()
        answered += 1
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, backlog=clients)
    port = server.sockets[0].getsockname()[1]
    async with server:
        result = await _burst(f"http://127.0.0.1:{port}", clients)
    assert answered == clients  # every client reached the server and sent its request
    return result


@pytest.mark.parametrize(("status", "failed"), [(b"200 OK", 0), (b"503 Unavailable", 40)])
def test_a_burst_counts_only_ok_answers(status: bytes, failed: int) -> None:
    result = asyncio.run(_with_server(status, 40))
    assert result["connections"] == 40
    assert result["failed"] == failed
    if not failed:
        assert 0 < result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]


def test_every_experiment_names_its_default_among_its_variants() -> None:
    for experiment in EXPERIMENTS:
        assert experiment.default in experiment.variants, experiment.setting
