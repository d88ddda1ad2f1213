"""The end of a run: the figures Locust does not print, the thresholds, and the exit code.

Exit codes: 0 the run passed; 1 a threshold was crossed; 3 the run is invalid because the load
generator's CPU saturated (its figures measure the generator, whatever they say).
"""

import json
import logging
from pathlib import Path
from typing import Any

from locust import events
from locust.env import Environment
from locust.runners import WorkerRunner

from loadtests.open_loop import SCENARIO as OPEN_LOOP
from loadtests.run_stats import RUN
from loadtests.thresholds import EntryFigures, Limit, Thresholds, breaches

EXIT_BREACH = 1
EXIT_INVALID = 3
PERCENTILES = [50.0, 90.0, 99.0, 99.9]

_log = logging.getLogger(__name__)


def thresholds_from(options: Any) -> Thresholds:
    return Thresholds(
        max_failure_ratio=options.max_failure_ratio,
        p95=Limit.parse(options.max_p95_ms),
        p99=Limit.parse(options.max_p99_ms),
        time_to_result_p99=Limit.parse(options.max_ttr_p99_ms),
    )


def entry_figures(environment: Environment) -> list[EntryFigures]:
    return [
        EntryFigures(
            name=entry.name,
            method=entry.method or "",
            requests=entry.num_requests,
            failures=entry.num_failures,
            p95_ms=entry.get_response_time_percentile(0.95) or 0,
            p99_ms=entry.get_response_time_percentile(0.99) or 0,
        )
        for entry in environment.stats.entries.values()
    ]


def open_loop_table(environment: Environment) -> dict[str, dict[str, float]] | None:
    """Locust's percentiles of the open loop (from sending) next to those from intended start."""
    entry = environment.stats.entries.get((f"{OPEN_LOOP} /predict", "POST"))
    if entry is None or not entry.num_requests:
        return None
    locust_ms = {f"p{p:g}": float(entry.get_response_time_percentile(p / 100)) for p in PERCENTILES}
    return {
        "locust_from_send": locust_ms | {"max": float(entry.max_response_time)},
        "corrected_from_intended_start": RUN.corrected_percentiles_ms(PERCENTILES),
    }


def _print_open_loop(table: dict[str, dict[str, float]]) -> None:
    columns = list(next(iter(table.values())))
    print(
        f"\nOpen-loop latency, ms ({RUN.corrected.get_total_count()} arrivals, "
        f"{RUN.unfinished_arrivals} unfinished at stop)"
    )
    print(f"{'':32}" + "".join(f"{c:>10}" for c in columns))
    for label, row in table.items():
        print(f"{label:32}" + "".join(f"{row[c]:>10.1f}" for c in columns))


def generator_saturated(environment: Environment, limit: float) -> bool:
    runner = environment.runner
    locust_warned = runner is not None and (
        runner.cpu_warning_emitted or runner.worker_cpu_warning_emitted
    )
    return RUN.generator_cpu_peak > limit or locust_warned


@events.quitting.add_listener
def _decide(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return  # the master decides, on everyone's figures
    options = environment.parsed_options
    assert options is not None
    found = breaches(thresholds_from(options), entry_figures(environment))
    invalid = generator_saturated(environment, options.max_generator_cpu)
    table = open_loop_table(environment)
    if table is not None:
        _print_open_loop(table)
    for scenario, ratio in RUN.polls_per_result().items():
        _log.info("event=polls_per_result scenario=%s polls_per_result=%.2f", scenario, ratio)
    for breach in found:
        _log.error("event=threshold_breached %s", breach)
    if invalid:
        _log.error(
            "event=run_invalid reason=generator_cpu_saturated cpu_peak_percent=%.0f limit=%.0f",
            RUN.generator_cpu_peak,
            options.max_generator_cpu,
        )
    environment.process_exit_code = EXIT_INVALID if invalid else EXIT_BREACH if found else 0
    if options.csv_prefix:
        summary = {
            "exit_code": environment.process_exit_code,
            "valid": not invalid,
            "generator_cpu_peak_percent": RUN.generator_cpu_peak,
            "breaches": found,
            "polls_per_result": RUN.polls_per_result(),
            "open_loop_ms": table,
            "unfinished_arrivals": RUN.unfinished_arrivals,
            "knee": RUN.knee,
        }
        path = Path(f"{options.csv_prefix}_summary.json")
        path.write_text(json.dumps(summary, indent=2) + "\n")
