"""The connection-burst client of `make bench-settings`, against a real local server."""

import asyncio
from pathlib import Path

import orjson
import pytest

from bench.results import ConnectionBurst, ExperimentResult, SettingsRun, SyncThroughput
from bench.server_settings import EXPERIMENTS, _burst, _print, write


async def _with_server(status: bytes, clients: int) -> ConnectionBurst:
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
    assert result.connections == 40
    assert result.failed == failed
    if not failed:
        assert 0 < result.p50_ms <= result.p99_ms <= result.max_ms


def test_every_experiment_names_its_default_among_its_variants() -> None:
    for experiment in EXPERIMENTS:
        assert experiment.default in experiment.variants, experiment.setting


KEEPALIVE = ExperimentResult(
    setting="keepalive (gunicorn.conf.py)",
    question="what keep-alive saves",
    default="keep-alive",
    columns=("rps", "p50_ms", "p99_ms", "errors"),
    rows={
        "keep-alive": SyncThroughput(20_000.0, 1.0, 2.5, 0),
        "new connection per request": SyncThroughput(6_000.0, 4.0, 9.0, 3),
    },
)


def test_an_experiment_prints_a_row_per_variant_and_marks_the_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _print(KEEPALIVE)
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "keepalive (gunicorn.conf.py): what keep-alive saves"
    assert lines[2].split() == ["rps", "p50_ms", "p99_ms", "errors"]
    assert lines[3].split() == ["*", "keep-alive", "20,000.0", "1.0", "2.5", "0.0"]
    assert lines[4].split()[:5] == ["new", "connection", "per", "request", "6,000.0"]


def test_settings_json_holds_every_variant(tmp_path: Path) -> None:
    written = orjson.loads(write(tmp_path, SettingsRun("not pinned", (KEEPALIVE,))).read_bytes())
    [experiment] = written["experiments"]
    assert experiment["default"] == "keep-alive"
    assert experiment["rows"]["new connection per request"] == {
        "rps": 6000.0,
        "p50_ms": 4.0,
        "p99_ms": 9.0,
        "errors": 3,
    }
