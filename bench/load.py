"""wrk, the load generator of the throughput figures, and what a run of it measured.

wrk (C, one thread on the load core) drives the raw-ASGI bound to ~42k rps on one core here,
server-bound; k6 and Locust saturate well below that, so they would measure themselves.
"""

import os
import resource
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import orjson

from bench.cpu import CpuMeter
from bench.placement import Placement
from bench.results import LoadRun

LUA_DIR = Path(__file__).resolve().parent / "wrk"
# wrk's one thread using this much of a core while the server core idles means the generator,
# not the server, set the pace. (The load core's own busy time is reported but not used: Redis
# and any other work on the machine share that core.)
SATURATED_GENERATOR_CPU = 0.90
SERVER_IDLE_BUSY = 0.85
# Error answers (4xx/5xx, timeouts) above this share of requests void a run; below it they are
# reported with it (a shared machine can stall a Redis reply past a client's timeout).
MAX_ERROR_SHARE = 0.01


class WrkMissingError(RuntimeError):
    pass


class GeneratorSaturatedError(RuntimeError):
    pass


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise WrkMissingError(
            "wrk is not installed: `sudo apt-get install wrk` (Debian/Ubuntu), "
            "`brew install wrk` (macOS), or build it from its source (github.com/wg/wrk)"
        )
    return found


def generator_saturated(run: LoadRun) -> bool:
    return run.generator_cpu >= SATURATED_GENERATOR_CPU and run.server_core_busy < SERVER_IDLE_BUSY


@dataclass(frozen=True, slots=True)
class WrkOutput:
    """What report.lua printed: the run's counts and latency distribution."""

    duration_s: float
    requests: int
    errors: dict[str, int]
    latency_cdf_ms: tuple[tuple[float, float], ...]  # (percentile, latency in ms)


def parse_wrk_output(scenario: str, connections: int, stdout: str) -> WrkOutput:
    for line in stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            raw = orjson.loads(line.removeprefix("BENCH_JSON "))
            return WrkOutput(
                duration_s=raw["duration_us"] / 1e6,
                requests=raw["requests"],
                errors=raw["errors"],
                latency_cdf_ms=tuple((float(p), us / 1000) for p, us in raw["latency_us"]["cdf"]),
            )
    raise RuntimeError(f"wrk printed no result for {scenario} (c={connections}):\n{stdout}")


def run_wrk(
    url: str,
    scenario: str,
    *,
    script: str,
    connections: int,
    duration_s: float,
    placement: Placement,
    env: dict[str, str],
    allow_errors: bool = False,
) -> LoadRun:
    """One wrk run; `allow_errors` reports error answers instead of voiding the run (where
    they are what is measured)."""
    command = [
        wrk_binary(),
        "--threads", "1",
        "--connections", str(connections),
        "--duration", f"{max(1, round(duration_s))}s",
        "--timeout", "10s",
        "--script", str(LUA_DIR / script),
        url,
    ]  # fmt: skip
    meter = CpuMeter(placement.server_cpus, placement.load_cpus)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        placement.load_command(command),
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=duration_s + 60,
    )
    window = meter.stop()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_cpu_s = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr}")
    output = parse_wrk_output(scenario, connections, done.stdout)
    result = LoadRun(
        scenario=scenario,
        connections=connections,
        duration_s=output.duration_s,
        requests=output.requests,
        errors=output.errors,
        latency_cdf_ms=output.latency_cdf_ms,
        server_core_busy=window.server_busy,
        load_core_busy=window.load_busy,
        generator_cpu=wrk_cpu_s / output.duration_s,
    )
    if placement.pinned and generator_saturated(result):
        raise GeneratorSaturatedError(
            f"{scenario} at {connections} connections: wrk used {result.generator_cpu:.0%} of "
            f"a core while the server core was only {window.server_busy:.0%} busy; the figure "
            "would measure wrk, not the server"
        )
    failed = sum(result.errors.values())
    if not allow_errors and failed > MAX_ERROR_SHARE * max(1, result.requests):
        raise RuntimeError(
            f"{scenario} against {url}: {failed} of {result.requests} requests failed "
            f"{result.errors}"
        )
    return result
