"""Security controls over real sockets, served by gunicorn with two workers: the request-head
limits of the HTTP parser, and one rate limit shared by both processes."""

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from service.server.embedded_redis import EmbeddedRedis
from service.server.process import ServerProcess
from tests.support.http import raw_request
from tests.support.served import serve

pytestmark = pytest.mark.served


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, redis_server: EmbeddedRedis
) -> Iterator[ServerProcess]:
    env = {
        "REDIS_URL": redis_server.url,
        "KEY_PREFIX": "served-security:",
        "WEB_CONCURRENCY": "2",
        # A refill every 1000 s: within the test only the burst passes.
        "RATE_LIMIT_PER_S": "0.001",
        "RATE_LIMIT_BURST": "3",
    }
    with serve(env, tmp_path_factory.mktemp("served-security")) as server:
        yield server


def get_health(served: ServerProcess, extra_lines: list[bytes], path: bytes = b"/healthz") -> int:
    head = b"\r\n".join(
        [b"GET " + path + b" HTTP/1.1", b"Host: x", *extra_lines, b"Connection: close"]
    )
    return raw_request(served, head + b"\r\n\r\n")[0]


def header_lines(count: int) -> list[bytes]:
    return [b"X-H%d: v" % i for i in range(count)]


def test_headers_up_to_the_limit_pass(served: ServerProcess) -> None:
    # Host and Connection count too: 100 fields in all.
    assert get_health(served, header_lines(98)) == 200
    name = b"X-Long"
    value = b"v" * (8190 - len(name) - 2)
    assert get_health(served, [name + b": " + value]) == 200


def test_more_headers_than_the_limit_is_431(served: ServerProcess) -> None:
    assert get_health(served, header_lines(99)) == 431


def test_a_header_longer_than_the_limit_is_431(served: ServerProcess) -> None:
    name = b"X-Long"
    value = b"v" * (8190 - len(name) - 1)
    assert get_health(served, [name + b": " + value]) == 431


def test_a_url_longer_than_the_limit_is_414(served: ServerProcess) -> None:
    assert get_health(served, [], b"/healthz?" + b"a" * 4100) == 414


def test_a_header_that_never_ends_is_cut_off(served: ServerProcess) -> None:
    # No line end ever comes: the parser would buffer it whole; the server answers once the
    # head passes what the limits allow, and the client stops sending (raw_request).
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Endless: "
    status, headers, body = raw_request(served, head, *([b"v" * 65536] * 32))
    assert status == 431
    assert headers["connection"] == "close"
    assert b"too large" in body


def _worker_of(served: ServerProcess, sock: socket.socket) -> int | None:
    local = sock.getsockname()
    for worker in psutil.Process(served.process.pid).children():
        for conn in worker.net_connections(kind="tcp"):
            if conn.raddr and tuple(conn.raddr) == local:
                return worker.pid
    return None


def connection_per_worker(served: ServerProcess) -> dict[int, socket.socket]:
    """Keep-alive connections, opened until each of the two workers has accepted one."""
    held: dict[int, socket.socket] = {}
    spare: list[socket.socket] = []
    for _ in range(200):
        sock = socket.create_connection(("127.0.0.1", served.port), timeout=10)
        deadline = time.monotonic() + 5
        while (pid := _worker_of(served, sock)) is None and time.monotonic() < deadline:
            time.sleep(0.01)
        if pid is not None and pid not in held:
            held[pid] = sock
        else:
            spare.append(sock)
        if len(held) == 2:
            break
    for sock in spare:
        sock.close()
    assert len(held) == 2, "the two workers never both accepted a connection"
    return held


def predict_on(sock: socket.socket) -> int:
    body = b'{"input": "x"}'
    sock.sendall(
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, rest = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(rest) < length:
        rest += sock.recv(65536)
    return int(head.split()[1])


def test_the_rate_limit_holds_across_two_workers(served: ServerProcess) -> None:
    first, second = connection_per_worker(served).values()
    try:
        # The whole burst is spent through the first worker; the second then refuses too.
        assert [predict_on(first) for _ in range(3)] == [200, 200, 200]
        assert predict_on(second) == 429
        assert predict_on(first) == 429
    finally:
        first.close()
        second.close()


def test_the_head_limits_are_gunicorns_settings(
    tmp_path: Path, redis_server: EmbeddedRedis
) -> None:
    env = {"REDIS_URL": redis_server.url, "GUNICORN_CMD_ARGS": "--limit-request-fields 10"}
    with serve(env, tmp_path) as server:
        assert get_health(server, header_lines(8)) == 200
        assert get_health(server, header_lines(9)) == 431
