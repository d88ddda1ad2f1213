"""Each scenario, shape and threshold of `make loadtest`, headless, against a served API."""

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from loadtests.launch import webhook_secret
from service.server.embedded_redis import EmbeddedRedis
from service.server.process import ServerProcess
from tests.support.locust_runs import LoadtestRun, loadtest
from tests.support.served import iris_env, serve
from tests.support.webhooks import local_env

pytestmark = [pytest.mark.served, pytest.mark.locust]


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, redis_server: EmbeddedRedis
) -> Iterator[ServerProcess]:
    with serve({"REDIS_URL": redis_server.url}, tmp_path_factory.mktemp("served")) as served:
        yield served


@pytest.fixture(scope="module")
def iris_server(
    tmp_path_factory: pytest.TempPathFactory, redis_server: EmbeddedRedis, iris_artifact: Path
) -> Iterator[ServerProcess]:
    env = iris_env(redis_server.url, iris_artifact)
    with serve(env, tmp_path_factory.mktemp("served")) as served:
        yield served


def counted(row: dict[str, str]) -> tuple[int, int]:
    return int(row["Request Count"]), int(row["Failure Count"])


@pytest.mark.parametrize(
    ("scenario", "entries"),
    [
        ("sync", [("POST", "sync /predict")]),
        (
            "submit-poll",
            [
                ("POST", "submit-poll /predict"),
                ("GET", "submit-poll /predict/{id}"),
                ("RESULT", "submit-poll time-to-result"),
            ],
        ),
        (
            "long-poll",
            [
                ("POST", "long-poll /predict"),
                ("GET", "long-poll /predict/{id}"),
                ("RESULT", "long-poll time-to-result"),
            ],
        ),
        (
            "sse",
            [
                ("POST", "sse /predict"),
                ("GET", "sse /predict/{id}/events"),
                ("RESULT", "sse time-to-result"),
            ],
        ),
    ],
)
def test_scenario_passes(
    server: ServerProcess, tmp_path: Path, scenario: str, entries: list[tuple[str, str]]
) -> None:
    run = loadtest(server.url, tmp_path, SCENARIO=scenario)
    assert run.returncode == 0, run.output
    stats = run.stats()
    for entry in entries:
        requests, failures = counted(stats[entry])
        assert requests > 0, entry
        assert failures == 0, entry
    if scenario != "sync":
        assert run.summary()["polls_per_result"][scenario] >= 1


def test_webhook_scenario_times_signed_deliveries(
    tmp_path_factory: pytest.TempPathFactory, redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    secret = webhook_secret()
    env = {
        "REDIS_URL": redis_server.url,
        # Its own job stream: the other server on this Redis sends no webhooks.
        "KEY_PREFIX": "webhooks:",
        **local_env(secret),
    }
    with serve(env, tmp_path_factory.mktemp("served")) as served:
        # The receiver verifies each delivery's signature with the service's secret.
        run = loadtest(served.url, tmp_path, SCENARIO="webhook", WEBHOOK_SECRET=secret)
        # Not told the target's secret, it checks that the signature headers are there: a run
        # against a TARGET_URL makes up no secret of its own to fail every delivery with.
        unverified = loadtest(served.url, tmp_path / "unverified", SCENARIO="webhook")
    assert unverified.returncode == 0, unverified.output
    assert counted(unverified.stats()[("WEBHOOK", "webhook delivery")])[0] > 0
    assert run.returncode == 0, run.output
    stats = run.stats()
    for entry in [
        ("POST", "webhook /predict"),
        ("WEBHOOK", "webhook delivery"),
        ("RESULT", "webhook time-to-result"),
    ]:
        requests, failures = counted(stats[entry])
        assert requests > 0, entry
        assert failures == 0, entry
    assert run.summary()["polls_per_result"]["webhook"] >= 1  # deliveries per result


def test_mixed_sends_iris_measurements_to_the_iris_model(
    iris_server: ServerProcess, tmp_path: Path
) -> None:
    run = loadtest(iris_server.url, tmp_path, SCENARIO="mixed", MODEL="iris", LOCUST_RUN_TIME="4s")
    assert run.returncode == 0, run.output
    stats = run.stats()
    # The iris server answers 422 to anything but four numbers: no failure means iris inputs.
    for scenario in ("sync", "submit-poll"):
        requests, failures = counted(stats[("POST", f"{scenario} /predict")])
        assert requests > 0
        assert failures == 0


def test_impossible_threshold_exits_non_zero(server: ServerProcess, tmp_path: Path) -> None:
    run = loadtest(server.url, tmp_path, SCENARIO="sync", LOADTEST_MAX_P99_MS="0.001")
    assert run.returncode != 0, run.output
    assert run.summary()["exit_code"] == 1
    assert any("sync /predict: p99" in breach for breach in run.summary()["breaches"])


def test_time_to_result_threshold_exits_non_zero(server: ServerProcess, tmp_path: Path) -> None:
    run = loadtest(server.url, tmp_path, SCENARIO="submit-poll", LOADTEST_MAX_TTR_P99_MS="0.001")
    assert run.returncode != 0, run.output
    assert run.summary()["exit_code"] == 1
    assert any("time-to-result p99" in breach for breach in run.summary()["breaches"])


class _WrongBody(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        body = b'{"unexpected": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


def test_a_200_with_the_wrong_body_is_a_failure(tmp_path: Path) -> None:
    stub = ThreadingHTTPServer(("127.0.0.1", 0), _WrongBody)
    threading.Thread(target=stub.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{stub.server_address[1]}"
        run = loadtest(url, tmp_path, SCENARIO="sync", LOCUST_USERS="1", LOCUST_RUN_TIME="2s")
    finally:
        stub.shutdown()
        stub.server_close()
    assert run.returncode != 0, run.output
    assert run.summary()["exit_code"] == 1
    requests, failures = counted(run.stats()[("POST", "sync /predict")])
    assert requests > 0
    assert failures == requests
    assert "input not echoed" in (tmp_path / "sync_failures.csv").read_text()


def test_a_saturated_generator_makes_the_run_invalid(server: ServerProcess, tmp_path: Path) -> None:
    run = loadtest(server.url, tmp_path, SCENARIO="sync", LOADTEST_MAX_GENERATOR_CPU="0")
    assert run.returncode != 0, run.output
    assert run.summary()["exit_code"] == 3
    assert run.summary()["valid"] is False
    assert "event=run_invalid reason=generator_cpu_saturated" in run.output


def test_distributed_processes_add_up_their_figures(server: ServerProcess, tmp_path: Path) -> None:
    run = loadtest(
        server.url, tmp_path, SCENARIO="submit-poll", LOCUST_PROCESSES="2", LOCUST_RUN_TIME="5s"
    )
    assert run.returncode == 0, run.output
    requests, failures = counted(run.stats()[("RESULT", "submit-poll time-to-result")])
    assert requests > 0
    assert failures == 0
    # Polls per result is measured on the workers and reaches the master only through reports.
    assert run.summary()["polls_per_result"]["submit-poll"] >= 1


def run_shape(server: ServerProcess, tmp_path: Path, shape: str, **knobs: str) -> LoadtestRun:
    """A passing sync run under the shape with the given LOADTEST_* knobs."""
    run = loadtest(server.url, tmp_path, SCENARIO="sync", SHAPE=shape, **knobs)
    assert run.returncode == 0, run.output
    return run


def users_over_time(run: LoadtestRun) -> list[int]:
    return [int(row["User Count"]) for row in run.history()]


def test_step_shape_climbs_in_steps(server: ServerProcess, tmp_path: Path) -> None:
    knobs = {"LOADTEST_STEP_USERS": "2", "LOADTEST_STEP_S": "2", "LOADTEST_STEPS": "3"}
    users = users_over_time(run_shape(server, tmp_path, "step", **knobs))
    assert max(users) == 6
    assert min(u for u in users if u) < 6  # it climbed there


def test_spike_shape_jumps_and_falls_back(server: ServerProcess, tmp_path: Path) -> None:
    knobs = {"LOADTEST_SPIKE_BASE_USERS": "1", "LOADTEST_SPIKE_USERS": "8"}
    knobs |= {"LOADTEST_SPIKE_AT_S": "2", "LOADTEST_SPIKE_S": "2", "LOADTEST_SPIKE_TOTAL_S": "6"}
    users = users_over_time(run_shape(server, tmp_path, "spike", **knobs))
    assert max(users) == 8
    assert users[-1] == 1


def test_knee_shape_stops_where_p99_crosses_its_limit(
    server: ServerProcess, tmp_path: Path
) -> None:
    knobs = {"LOADTEST_KNEE_STEP_USERS": "2", "LOADTEST_KNEE_STEP_S": "2"}
    run = run_shape(server, tmp_path, "knee", **knobs, LOADTEST_KNEE_P99_MS="0.001")
    knee = run.summary()["knee"]
    assert knee["knee"] is None  # not even the first step stayed within 0.001 ms
    assert knee["crossed_at"]["users"] == 2
    assert max(users_over_time(run)) == 2
