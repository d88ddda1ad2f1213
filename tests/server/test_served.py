"""The API over real sockets, served by gunicorn as `make run` serves it."""

import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import orjson
import pytest

from service.server.embedded_redis import EmbeddedRedis
from service.server.process import ServerProcess, stop
from tests.support.http import raw_request
from tests.support.served import serve

pytestmark = pytest.mark.served


def post_predict(
    served: ServerProcess, header_lines: list[str], body: bytes
) -> tuple[int, dict[str, str], bytes]:
    head = "\r\n".join(
        [
            "POST /predict HTTP/1.1",
            f"Host: 127.0.0.1:{served.port}",
            "accept: application/json",
            "Content-Type: application/json",
            *header_lines,
            f"Content-Length: {len(body)}",
            "Connection: close",
        ]
    )
    return raw_request(served, head.encode() + b"\r\n\r\n", body)


@pytest.fixture(scope="module")
def slow_server(
    tmp_path_factory: pytest.TempPathFactory, redis_server: EmbeddedRedis
) -> Iterator[ServerProcess]:
    with serve(
        {"REDIS_URL": redis_server.url, "MOCK_LATENCY_MS": "400", "WEB_CONCURRENCY": "2"},
        tmp_path_factory.mktemp("served"),
    ) as served:
        yield served


SEED_BODY = b'{\n  "input": "some_input_data"\n}'


def test_literal_underscore_header_over_a_socket_is_async(slow_server: ServerProcess) -> None:
    status, headers, body = post_predict(slow_server, ["async_mode: true"], SEED_BODY)
    assert status == 202
    prediction_id = orjson.loads(body)["prediction_id"]
    assert uuid.UUID(prediction_id).version == 4
    assert headers["location"] == f"/predict/{prediction_id}"


@pytest.mark.parametrize("line", ["Async-Mode: true", "ASYNC_MODE: True", "async-mode: TRUE"])
def test_other_spellings_over_a_socket_are_async(slow_server: ServerProcess, line: str) -> None:
    status, _, _ = post_predict(slow_server, [line], SEED_BODY)
    assert status == 202


def test_prefer_respond_async_over_a_socket_is_async(slow_server: ServerProcess) -> None:
    status, headers, _ = post_predict(slow_server, ["Prefer: respond-async"], SEED_BODY)
    assert status == 202
    assert headers["preference-applied"] == "respond-async"


def test_no_header_over_a_socket_is_sync(slow_server: ServerProcess) -> None:
    status, _, body = post_predict(slow_server, [], SEED_BODY)
    assert status == 200
    assert orjson.loads(body)["input"] == "some_input_data"


def test_poll_while_processing_then_result(slow_server: ServerProcess) -> None:
    _, _, body = post_predict(slow_server, ["async_mode: true"], SEED_BODY)
    prediction_id = orjson.loads(body)["prediction_id"]
    early = httpx.get(f"{slow_server.url}/predict/{prediction_id}")
    assert early.status_code == 202
    assert early.json()["error"] == "Prediction is still being processed."
    assert early.headers["retry-after"] == "1"
    deadline = time.monotonic() + 10
    while (late := httpx.get(f"{slow_server.url}/predict/{prediction_id}")).status_code == 202:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert late.status_code == 200
    assert late.json()["input"] == "some_input_data"
    assert late.json()["result"].isdigit()


def test_two_mib_body_over_a_socket_is_413_before_the_body_is_read(
    slow_server: ServerProcess,
) -> None:
    big = b'{"input": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    head = (
        f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"async_mode: true\r\nContent-Length: {len(big)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", slow_server.port), timeout=10) as sock:
        sock.sendall(head)  # headers only: the server must answer without waiting for the body
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b"MAX_BODY_BYTES" in answer


def test_chunked_body_over_the_limit_over_a_socket_is_413(slow_server: ServerProcess) -> None:
    chunk = b"x" * 65536
    parts = [b'{"input": "', *([chunk] * 20), b'"}']
    encoded = [f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in parts] + [b"0\r\n\r\n"]
    head = (
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    status, _, _ = raw_request(slow_server, head, *encoded)
    assert status == 413


def test_sigterm_stops_gracefully(tmp_path: Path, redis_server: EmbeddedRedis) -> None:
    with serve({"REDIS_URL": redis_server.url}, tmp_path) as served:
        assert httpx.get(f"{served.url}/healthz").status_code == 200
        assert stop(served.process) == 0
        assert "Shutting down: Master" in served.output()
