"""The CI gate's deterministic counts: Redis round trips per request and response bytes per
endpoint, over real sockets against the service served as `make run` serves it. Exact, so a
change that adds a round trip or a byte fails here; bench/gate.toml holds the expected values.
"""

import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from bench.gate import load_floors
from bench.redis_counts import RedisCounter
from service.server.embedded_redis import EmbeddedRedis
from service.server.process import ServerProcess
from tests.support.served import iris_env, serve

pytestmark = pytest.mark.served

EXPECTED = load_floors()
MOCK_BODY = b'{"input": "some_input_data"}'
IRIS_BODY = b'{"input": [6.7, 3.0, 5.2, 2.3]}'
REQUESTS = 20


def exchange(
    served: ServerProcess, method: str, path: str, body: bytes = b"", *headers: str
) -> bytes:
    """One request on its own connection; the whole response as it came off the socket."""
    head = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close", *headers]
    if body:
        head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        sock.sendall("\r\n".join(head).encode() + b"\r\n\r\n" + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def body_of(response: bytes) -> dict[str, object]:
    parsed: dict[str, object] = orjson.loads(response.partition(b"\r\n\r\n")[2])
    return parsed


@pytest.fixture(scope="module")
def quiet(
    tmp_path_factory: pytest.TempPathFactory, redis_server: EmbeddedRedis
) -> Iterator[ServerProcess]:
    """A service whose only Redis traffic is its requests': no consumers in it (its jobs stay
    queued) and no queue sampling, so the server's read events are the requests' own."""
    env = {
        "REDIS_URL": redis_server.url,
        "WORKER_CONCURRENCY": "0",
        "QUEUE_SAMPLE_S": "0",
        "KEY_PREFIX": "quiet:",
    }
    with serve(env, tmp_path_factory.mktemp("quiet")) as served:
        yield served


@pytest.fixture(scope="module")
def iris(
    tmp_path_factory: pytest.TempPathFactory, redis_server: EmbeddedRedis, iris_artifact: Path
) -> Iterator[ServerProcess]:
    """The real model: its answers, and so its response sizes, are deterministic."""
    env = iris_env(redis_server.url, iris_artifact)
    with serve(env, tmp_path_factory.mktemp("iris")) as served:
        yield served


def round_trips(
    redis_server: EmbeddedRedis,
    served: ServerProcess,
    method: str,
    path: str,
    body: bytes,
    *headers: str,
) -> float:
    exchange(served, method, path, body, *headers)  # the worker's pool has its connection
    counter = RedisCounter(redis_server.url)
    try:
        counter.start()
        for _ in range(REQUESTS):
            exchange(served, method, path, body, *headers)
        return counter.delta().round_trips / REQUESTS
    finally:
        counter.close()


def test_sync_request_costs_no_redis_round_trip(
    redis_server: EmbeddedRedis, quiet: ServerProcess
) -> None:
    trips = round_trips(redis_server, quiet, "POST", "/predict", MOCK_BODY)
    assert trips == EXPECTED.round_trips_per_request["sync"] == 0


def test_submit_costs_one_round_trip(redis_server: EmbeddedRedis, quiet: ServerProcess) -> None:
    # The request's own cost; the job's start and finish are the consumers' (one round trip
    # each per batch), counted apart in the bench report.
    trips = round_trips(redis_server, quiet, "POST", "/predict", MOCK_BODY, "async_mode: true")
    assert trips == EXPECTED.round_trips_per_request["submit"] == 1


def test_poll_costs_one_round_trip(redis_server: EmbeddedRedis, quiet: ServerProcess) -> None:
    submitted = exchange(quiet, "POST", "/predict", MOCK_BODY, "async_mode: true")
    location = f"/predict/{body_of(submitted)['prediction_id']}"
    assert round_trips(redis_server, quiet, "GET", location, b"") == 1
    assert EXPECTED.round_trips_per_request["poll"] == 1
    unknown = f"/predict/{uuid.uuid4()}"
    assert round_trips(redis_server, quiet, "GET", unknown, b"") == 1


def test_an_async_batch_of_1000_inputs_is_one_redis_command(
    redis_server: EmbeddedRedis, quiet: ServerProcess
) -> None:
    """The request's commands only: the script's HSETs and XADDs run inside its one call."""
    body = orjson.dumps({"inputs": [f"some_input_data_{n}" for n in range(1000)]})
    exchange(quiet, "POST", "/predict/batch", body, "async_mode: true")  # the pool is warm
    counter = RedisCounter(redis_server.url)
    try:
        counter.start()
        answer = exchange(quiet, "POST", "/predict/batch", body, "async_mode: true")
        work = counter.delta()
    finally:
        counter.close()
    assert answer.startswith(b"HTTP/1.1 202"), answer[:200]
    assert len(body_of(answer)["predictions"]) == 1000  # type: ignore[arg-type]
    script_commands = {"exists", "get", "hset", "expire", "xadd", "incr"}
    calls = {name: n for name, n in work.commands.items() if name not in script_commands}
    assert (
        calls
        == {"evalsha": EXPECTED.redis_commands_per_request["batch_1000_async"]}
        == {"evalsha": 1}
    )
    assert work.commands["xadd"] == work.commands["hset"] == 1000


def _measured_bytes(quiet: ServerProcess, iris: ServerProcess) -> dict[str, int]:
    sync = exchange(iris, "POST", "/predict", IRIS_BODY)
    submitted = exchange(quiet, "POST", "/predict", MOCK_BODY, "async_mode: true")
    queued = f"/predict/{body_of(submitted)['prediction_id']}"
    processing = exchange(quiet, "GET", queued)
    not_found = exchange(quiet, "GET", f"/predict/{uuid.uuid4()}")
    done = exchange(iris, "POST", "/predict", IRIS_BODY, "async_mode: true")
    location = f"/predict/{body_of(done)['prediction_id']}"
    deadline = time.monotonic() + 10
    while (succeeded := exchange(iris, "GET", location)).startswith(b"HTTP/1.1 202"):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    # The two timestamps are floats whose printed width varies; the rest is fixed.
    stamps = body_of(succeeded)
    timestamp_bytes = sum(len(orjson.dumps(stamps[k])) for k in ("created_at", "finished_at"))
    return {
        "sync": len(sync),
        "submit": len(submitted),
        "poll_processing": len(processing),
        "poll_not_found": len(not_found),
        "poll_succeeded_without_timestamps": len(succeeded) - timestamp_bytes,
    }


def test_response_bytes_per_endpoint(quiet: ServerProcess, iris: ServerProcess) -> None:
    assert _measured_bytes(quiet, iris) == EXPECTED.response_bytes


@pytest.fixture(scope="module")
def consuming(
    tmp_path_factory: pytest.TempPathFactory, redis_server: EmbeddedRedis
) -> Iterator[ServerProcess]:
    """A service that runs its own jobs, on a model slow enough that a long-poll waits."""
    env = {
        "REDIS_URL": redis_server.url,
        "QUEUE_SAMPLE_S": "0",
        "MOCK_LATENCY_MS": "300",
        "KEY_PREFIX": "consuming:",
    }
    with serve(env, tmp_path_factory.mktemp("consuming")) as served:
        yield served


def test_a_long_poll_on_a_job_its_own_process_finished_reads_the_job_once(
    redis_server: EmbeddedRedis, consuming: ServerProcess
) -> None:
    """The waiter is woken with what the finish wrote, not sent back to Redis for it: one
    HGETALL (the read before the wait) for the whole long-poll."""
    counter = RedisCounter(redis_server.url)
    try:
        for _ in range(3):
            submitted = exchange(consuming, "POST", "/predict", MOCK_BODY, "async_mode: true")
            location = f"/predict/{body_of(submitted)['prediction_id']}"
            counter.start()
            answer = exchange(consuming, "GET", f"{location}?wait=5")
            work = counter.delta()
            assert answer.startswith(b"HTTP/1.1 200"), answer
            assert body_of(answer)["status"] == "succeeded"
            assert work.commands.get("hgetall") == 1, work.commands
    finally:
        counter.close()
