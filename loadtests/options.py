"""The load tests' own options, each also read from an environment variable (LOADTEST_*, MODEL).

Locust's own options keep their LOCUST_* variables; these are added to the same parser, so they
show in `locust --help` and in the web UI's custom parameters.
"""

from typing import Any

from locust import events
from locust.argument_parser import LocustArgumentParser


def _add(
    parser: LocustArgumentParser, flag: str, env: str, kind: Any, default: Any, help_: str
) -> None:
    parser.add_argument(flag, env_var=env, type=kind, default=default, help=f"{help_} [{env}]")


@events.init_command_line_parser.add_listener
def _add_options(parser: LocustArgumentParser) -> None:
    parser.add_argument(
        "--model",
        env_var="MODEL",
        choices=["mock", "iris"],
        default="mock",
        help="the model the server runs, which decides the inputs sent [MODEL]",
    )
    scenario_options = [
        ("--think-time-s", "LOADTEST_THINK_TIME_S", float, 0.1, "closed loop: pause between tasks"),
        (
            "--poll-interval-s",
            "LOADTEST_POLL_INTERVAL_S",
            float,
            0.1,
            "submit-poll: pause between polls",
        ),
        (
            "--long-poll-wait-s",
            "LOADTEST_LONG_POLL_WAIT_S",
            float,
            5.0,
            "long-poll: ?wait= seconds",
        ),
        (
            "--result-timeout-s",
            "LOADTEST_RESULT_TIMEOUT_S",
            float,
            30.0,
            "give up on a result after",
        ),
        ("--arrival-rate", "LOADTEST_ARRIVAL_RATE", float, 50.0, "open loop: arrivals/s per user"),
        (
            "--open-loop-connections",
            "LOADTEST_OPEN_LOOP_CONNECTIONS",
            int,
            16,
            "open loop: connections per user",
        ),
    ]
    threshold_options = [
        (
            "--max-failure-ratio",
            "LOADTEST_MAX_FAILURE_RATIO",
            float,
            0.01,
            "fail the run above this failure ratio",
        ),
        ("--max-p95-ms", "LOADTEST_MAX_P95_MS", str, "", "p95 limit: ms, or e.g. '500,sync=50'"),
        ("--max-p99-ms", "LOADTEST_MAX_P99_MS", str, "", "p99 limit: ms, or e.g. '800,sync=100'"),
        ("--max-ttr-p99-ms", "LOADTEST_MAX_TTR_P99_MS", str, "", "time-to-result p99 limit, ms"),
        (
            "--max-generator-cpu",
            "LOADTEST_MAX_GENERATOR_CPU",
            float,
            90.0,
            "run invalid above this CPU %",
        ),
    ]
    shape_options = [
        ("--step-users", "LOADTEST_STEP_USERS", int, 10, "step: users added per step"),
        ("--step-s", "LOADTEST_STEP_S", float, 15.0, "step: seconds per step"),
        ("--steps", "LOADTEST_STEPS", int, 4, "step: number of steps"),
        (
            "--spike-base-users",
            "LOADTEST_SPIKE_BASE_USERS",
            int,
            5,
            "spike: users before and after",
        ),
        ("--spike-users", "LOADTEST_SPIKE_USERS", int, 50, "spike: users during the spike"),
        ("--spike-at-s", "LOADTEST_SPIKE_AT_S", float, 20.0, "spike: starts after"),
        ("--spike-s", "LOADTEST_SPIKE_S", float, 10.0, "spike: lasts"),
        ("--spike-total-s", "LOADTEST_SPIKE_TOTAL_S", float, 60.0, "spike: whole run"),
        ("--knee-step-users", "LOADTEST_KNEE_STEP_USERS", int, 5, "knee: users added per step"),
        ("--knee-step-s", "LOADTEST_KNEE_STEP_S", float, 5.0, "knee: seconds per step"),
        ("--knee-max-users", "LOADTEST_KNEE_MAX_USERS", int, 60, "knee: stop at this many users"),
        (
            "--knee-p99-ms",
            "LOADTEST_KNEE_P99_MS",
            float,
            500.0,
            "knee: a step's p99 above this stops",
        ),
        (
            "--knee-failure-ratio",
            "LOADTEST_KNEE_FAILURE_RATIO",
            float,
            0.01,
            "knee: a step's failure ratio above this stops",
        ),
    ]
    export_options = [
        (
            "--prometheus-port",
            "LOADTEST_PROMETHEUS_PORT",
            int,
            0,
            "serve Locust's figures for Prometheus on this port (0: off)",
        ),
        (
            "--prometheus-host",
            "LOADTEST_PROMETHEUS_HOST",
            str,
            "127.0.0.1",
            "address for the Prometheus endpoint",
        ),
    ]
    for option in [*scenario_options, *threshold_options, *shape_options, *export_options]:
        _add(parser, *option)
