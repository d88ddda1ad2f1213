"""`make bench-instructions`: CPU instructions per sync request, counted by valgrind's callgrind.

Throughput figures drift with whatever else the machine runs; an instruction count does not:
the same build, load and environment give the same count within a fraction of a percent, on a
quiet machine or a busy one. It is not time (cache misses cost more than instructions), but a
change that adds or removes work shows in it at once, without the noise of a throughput run.

Each build is served by plain uvicorn (uvloop, httptools; the tuned build with the same HTTP
protocol class as its gunicorn worker) under callgrind, with instrumentation off while it starts;
wrk warms it, then instrumentation is switched on for a fixed-length wrk run. The tuned build
runs without stream consumers or queue sampling (WORKER_CONCURRENCY=0, QUEUE_SAMPLE_S=0): their
once-a-second work would be spread over however few requests the slowed-down server answers.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.builds import ROOT
from bench.lineup import BuildName
from bench.load import run_wrk
from bench.placement import Placement
from bench.results import InstructionCount, InstructionsRun
from bench.scenarios import MOCK_BODY
from service.server.embedded_redis import EmbeddedRedis
from service.server.process import free_port, wait_until_ready

# 50 times slower or more under valgrind: a few connections keep it busy.
CONNECTIONS = 8
WARM_UP_S = 3
MEASURED_S = 8
START_TIMEOUT_S = 300
UNPINNED = Placement(frozenset(), frozenset())

# How each build is served (bench/apps/serve.py): the tuned build from its factory, with the HTTP
# protocol of its gunicorn worker.
BUILDS: dict[BuildName, tuple[str, ...]] = {
    "tuned": ("service.api.app:create_app", "--factory", "--service-protocol"),
    "bound": ("bench.apps.bound:app",),
}


class ValgrindMissingError(RuntimeError):
    pass


def _wrk(url: str, seconds: int) -> int:
    """Requests a wrk run of `seconds` got answered (not pinned: valgrind's one thread and
    wrk share the machine)."""
    load = run_wrk(
        url,
        "sync",
        script="post.lua",
        connections=CONNECTIONS,
        duration_s=seconds,
        placement=UNPINNED,
        env={"BENCH_BODY": MOCK_BODY},
    )
    return load.requests


def count(
    build: BuildName,
    redis_url: str,
    tmp: Path,
    warm_up_s: int = WARM_UP_S,
    measured_s: int = MEASURED_S,
) -> InstructionCount:
    """Instructions per sync request of one build."""
    port = free_port()
    out = tmp / f"callgrind.{build}"
    log = tmp / f"{build}.log"
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "WORKER_CONCURRENCY": "0",
        "QUEUE_SAMPLE_S": "0",
        "PORT": str(port),
        "WEB_CONCURRENCY": "1",
    }
    command = [
        "valgrind", "--tool=callgrind", "--instr-atstart=no",
        f"--callgrind-out-file={out}.%p",
        sys.executable, "-m", "bench.apps.serve", *BUILDS[build],
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as sink:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=sink, stderr=sink)
    try:
        wait_until_ready(url, process, log, START_TIMEOUT_S)
        _wrk(url, warm_up_s)
        control = ["callgrind_control", "--instr=on", str(process.pid)]
        subprocess.run(control, check=True, capture_output=True)
        requests = _wrk(url, measured_s)
        control[1] = "--instr=off"
        subprocess.run(control, check=True, capture_output=True)
        subprocess.run(
            ["callgrind_control", "--dump", str(process.pid)], check=True, capture_output=True
        )
    finally:
        process.terminate()
        process.wait(timeout=120)
    totals = [
        int(line.split()[1])
        for dump in tmp.glob(f"{out.name}.*")
        for line in dump.read_text(errors="replace").splitlines()
        if line.startswith("totals:")
    ]
    instructions = max(totals, default=0)
    return InstructionCount(
        requests=requests,
        instructions=instructions,
        per_request=instructions / requests if requests else float("nan"),
    )


def run() -> InstructionsRun:
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise ValgrindMissingError("valgrind is not installed: `apt-get install valgrind`")
    with tempfile.TemporaryDirectory(prefix="bench-instructions-") as tmp_name:
        tmp = Path(tmp_name)
        with EmbeddedRedis(tmp / "redis", port=free_port(), appendonly=False) as redis_server:
            results = {build: count(build, redis_server.url, tmp) for build in BUILDS}
    ratio = results["bound"].per_request / results["tuned"].per_request
    for build, measured in results.items():
        print(
            f"{build:6} {measured.per_request:>10,.0f} instructions per sync request "
            f"({measured.requests:,} requests)"
        )
    print(f"bound / tuned: {ratio:.2f} (the tuned build's share of the bound's speed, by work)")
    return InstructionsRun(results, ratio)
