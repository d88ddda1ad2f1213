"""Read timeouts over real sockets, served by gunicorn: a request's head or body that does not
arrive in time is answered 408 and its connection closed, and counted; a client that is not
slow is not cut; an idle kept-alive connection is still closed after the keep-alive time."""

import socket
import time
from collections.abc import Iterator

import pytest

from service.server.embedded_redis import EmbeddedRedis
from service.server.process import ServerProcess
from tests.support.metrics import scraped_total
from tests.support.served import serve

pytestmark = pytest.mark.served

HEADER_TIMEOUT_S = 0.5
BODY_TIMEOUT_S = 0.5
KEEPALIVE_S = 2
# Time allowed past a configured timeout for a cut to reach the client on a busy machine.
SLACK_S = 5.0
HEAD = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
CUT_METRIC = "http_connections_timed_out_total"
PHASES = ("head", "body")
ENV = {
    "KEY_PREFIX": "served-timeouts:",
    "HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
    "BODY_TIMEOUT_S": str(BODY_TIMEOUT_S),
    "GUNICORN_CMD_ARGS": f"--keep-alive {KEEPALIVE_S}",
}


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, redis_server: EmbeddedRedis
) -> Iterator[ServerProcess]:
    env = {**ENV, "REDIS_URL": redis_server.url}
    with serve(env, tmp_path_factory.mktemp("served-timeouts")) as server:
        yield server


def connect(served: ServerProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", served.port), timeout=KEEPALIVE_S + SLACK_S)


def read_until_closed(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def read_response(sock: socket.socket) -> bytes:
    """One response whose body has a content-length (every answer of /healthz)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += sock.recv(65536)
    return head


def cut_after(served: ServerProcess, *pieces: bytes) -> tuple[bytes, float]:
    """Send `pieces` at once, then nothing: what the server answers, and when it closes."""
    with connect(served) as sock:
        start = time.monotonic()
        for piece in pieces:
            sock.sendall(piece)
        answer = read_until_closed(sock)
        return answer, time.monotonic() - start


def cuts(served: ServerProcess) -> dict[str, float]:
    # One worker, which flushes its own buffer before it answers a scrape.
    return {phase: scraped_total(served.url, CUT_METRIC, {"phase": phase}) for phase in PHASES}


def assert_408(answer: bytes, part: bytes) -> None:
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert b"connection: close\r\n" in answer
    assert b"The request's " + part + b" did not arrive in time." in answer


def test_a_head_that_stops_midway_is_answered_408(served: ServerProcess) -> None:
    answer, elapsed = cut_after(served, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    assert_408(answer, b"head")
    assert HEADER_TIMEOUT_S * 0.9 <= elapsed < HEADER_TIMEOUT_S + SLACK_S


def test_a_connection_that_sends_nothing_is_answered_408(served: ServerProcess) -> None:
    answer, elapsed = cut_after(served)
    assert_408(answer, b"head")
    assert HEADER_TIMEOUT_S * 0.9 <= elapsed < HEADER_TIMEOUT_S + SLACK_S


def test_a_body_that_stalls_is_answered_408(served: ServerProcess) -> None:
    head = (
        b"POST /predict HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
        b"content-length: 40\r\n\r\n"
    )
    answer, elapsed = cut_after(served, head, b'{"input": "')
    assert_408(answer, b"body")
    assert BODY_TIMEOUT_S * 0.9 <= elapsed < BODY_TIMEOUT_S + SLACK_S


def test_a_client_that_is_not_slow_is_not_cut(served: ServerProcess) -> None:
    with connect(served) as sock:
        sock.sendall(HEAD)
        assert read_response(sock).startswith(b"HTTP/1.1 200 ")
        # Idle between requests for longer than a head may take, shorter than keep-alive.
        time.sleep(HEADER_TIMEOUT_S * 2)
        sock.sendall(HEAD)
        assert read_response(sock).startswith(b"HTTP/1.1 200 ")
        # A head in pieces, and a body in pieces, each within its time.
        sock.sendall(HEAD[:10])
        time.sleep(HEADER_TIMEOUT_S / 5)
        sock.sendall(HEAD[10:])
        assert read_response(sock).startswith(b"HTTP/1.1 200 ")
        body = b'{"input": "some_input_data"}'
        sock.sendall(
            b"POST /predict HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n" % len(body)
        )
        time.sleep(BODY_TIMEOUT_S / 5)
        sock.sendall(body[:5])
        time.sleep(BODY_TIMEOUT_S / 5)
        sock.sendall(body[5:])
        assert read_response(sock).startswith(b"HTTP/1.1 200 ")


def test_an_idle_kept_alive_connection_is_closed_after_the_keep_alive_time(
    served: ServerProcess,
) -> None:
    with connect(served) as sock:
        sock.sendall(HEAD)
        read_response(sock)
        start = time.monotonic()
        assert read_until_closed(sock) == b""
        elapsed = time.monotonic() - start
    assert KEEPALIVE_S * 0.9 <= elapsed < KEEPALIVE_S + SLACK_S


def test_the_cut_connections_are_counted(served: ServerProcess) -> None:
    before = cuts(served)
    for _ in range(3):
        cut_after(served, b"GET /healthz HTTP/1.1\r\n")
    cut_after(served, b"POST /predict HTTP/1.1\r\nHost: x\r\ncontent-length: 9\r\n\r\n{")
    with connect(served) as sock:
        sock.sendall(HEAD)
        read_response(sock)
    after = cuts(served)
    assert after["head"] - before["head"] == 3
    assert after["body"] - before["body"] == 1
