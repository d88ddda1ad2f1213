"""Instructions per request, counted by valgrind's callgrind: `make bench-instructions`, and the
deterministic half of `make gate`.

Throughput figures drift with whatever else the machine runs; an instruction count does not:
the same build, load and environment give the same count within a fraction of a percent, on a
quiet machine or a busy one. It is not time (cache misses cost more than instructions), but a
change that adds or removes work shows in it at once, without the noise of a throughput run.

Four paths of the tuned build are counted, and two of the bound's, for the ratio:
- `sync`: `POST /predict` answered synchronously;
- `submit`: `POST /predict` with `async_mode: true`, no consumer running (the jobs stay queued);
- `poll`: `GET /predict/{id}` of a succeeded job;
- `finish`: a stream consumer's work per job, from reading a batch to finishing it, in a
  standalone worker with one consumer and full batches.

An HTTP path is served by plain uvicorn (uvloop, httptools; the tuned build with the same HTTP
protocol class as its gunicorn worker) under callgrind, with instrumentation off while it starts;
wrk warms it, then instrumentation is switched on for a fixed-length wrk run on one connection
(one request at a time, see CONNECTIONS). The tuned build
runs without stream consumers or queue sampling (WORKER_CONCURRENCY=0, QUEUE_SAMPLE_S=0): their
once-a-second work would be spread over however few requests the slowed-down server answers.
The consumer is counted while it drains jobs that were all submitted in one call (as the API
submits a batch), so that every batch but the last is full, whatever the timing.
"""

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import orjson
import redis
import redis.asyncio

from bench.builds import ROOT
from bench.lineup import BuildName
from bench.load import run_wrk
from bench.placement import Placement
from bench.results import InstructionCount, InstructionsRun
from bench.scenarios import MOCK_BODY
from service.jobs.store import JobStore
from service.server.embedded_redis import EmbeddedRedis
from service.server.process import free_port, wait_until_ready
from service.storage.keys import Keys

CountedPath = Literal["sync", "submit", "poll", "finish"]
PATHS: tuple[CountedPath, ...] = ("sync", "submit", "poll", "finish")
# (build, path) pairs a full count measures; the bound has no queue to submit to or consume.
COUNTED: tuple[tuple[BuildName, CountedPath], ...] = (
    ("tuned", "sync"),
    ("tuned", "submit"),
    ("tuned", "poll"),
    ("tuned", "finish"),
    ("bound", "sync"),
    ("bound", "poll"),
)
TUNED = tuple((build, path) for build, path in COUNTED if build == "tuned")

# One request at a time: its own work, with no other request to share a loop iteration, a
# socket read or a Redis write with. With 8 connections, how many did depended on timing, and
# the poll's count moved by 6% between two runs of one commit on a quiet machine (255.9k to
# 270.8k); one at a time, three runs agreed within 0.7% (docs/benchmarks.md). Under valgrind the
# server is the bottleneck either way: one connection answers about as many requests.
CONNECTIONS = 1
WARM_UP_S = 3
MEASURED_S = 8
START_TIMEOUT_S = 300
UNPINNED = Placement(frozenset(), frozenset())
POLLED_JOBS = 2_000
FINISHED_JOBS = 2_000
WARM_UP_JOBS = 256
KEY_PREFIX = "pred:"

# How each build is served (bench/apps/serve.py): the tuned build from its factory, with the HTTP
# protocol of its gunicorn worker.
BUILDS: dict[BuildName, tuple[str, ...]] = {
    "tuned": ("service.api.app:create_app", "--factory", "--service-protocol"),
    "bound": ("bench.apps.bound:app",),
}
QUIET = {"WORKER_CONCURRENCY": "0", "QUEUE_SAMPLE_S": "0", "MAX_QUEUE": "100000000"}
# One consumer taking full batches; no reclaiming and no empty reads while it is counted. Once
# counted it is idle, blocked in a read of up to a minute: a stop that waited for that read
# would wait out GRACEFUL_TIMEOUT_S (30 s), so it waits 1 s and cancels the read.
CONSUMER = {
    "WORKER_CONCURRENCY": "1",
    "CLAIM_IDLE_MS": "3600000",
    "WORKER_BLOCK_MS": "60000",
    "REDIS_SOCKET_TIMEOUT_S": "300",
    "GRACEFUL_TIMEOUT_S": "1",
}


@dataclass(frozen=True, slots=True)
class Source:
    """The source tree a count runs (its working directory) and the Python that runs it."""

    root: Path = ROOT
    python: str = sys.executable


class ValgrindMissingError(RuntimeError):
    pass


def require_valgrind() -> None:
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise ValgrindMissingError("valgrind is not installed: `apt-get install valgrind`")


def _callgrind(out: Path) -> list[str]:
    return ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}.%p"]


def _control(pid: int, *options: str) -> None:
    for option in options:
        subprocess.run(["callgrind_control", option, str(pid)], check=True, capture_output=True)


def _total(tmp: Path, out: Path) -> int:
    totals = [
        int(line.split()[1])
        for dump in tmp.glob(f"{out.name}.*")
        for line in dump.read_text(errors="replace").splitlines()
        if line.startswith("totals:")
    ]
    return max(totals, default=0)


@contextmanager
def _under_callgrind(
    command: Sequence[str], env: Mapping[str, str], out: Path, log: Path, root: Path
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [*_callgrind(out), *command], cwd=root, env=dict(env), stdout=sink, stderr=sink
        )
    try:
        yield process
    finally:
        process.terminate()
        process.wait(timeout=120)


def _wrk(url: str, path: CountedPath, seconds: int, ids_file: Path) -> int:
    """Requests a wrk run of `seconds` got answered (not pinned: valgrind's one thread and
    wrk share the machine)."""
    load = run_wrk(
        url,
        path,
        script="poll.lua" if path == "poll" else "post.lua",
        connections=CONNECTIONS,
        duration_s=seconds,
        placement=UNPINNED,
        env={
            "BENCH_BODY": MOCK_BODY,
            "BENCH_ASYNC": "true" if path == "submit" else "false",
            "BENCH_IDS_FILE": str(ids_file),
        },
    )
    return load.requests


def succeeded_jobs(redis_url: str, count: int) -> list[str]:
    """Job hashes as a consumer leaves them, for the polls to read (every build reads the
    service's layout under the default prefix)."""
    ids = [str(uuid.uuid4()) for _ in range(count)]
    now = repr(time.time())
    fields = {
        "status": "succeeded",
        "input": orjson.dumps("some_input_data"),
        "result": "1234",
        "created_at": now,
        "finished_at": now,
        "attempts": 1,
    }
    with redis.Redis.from_url(redis_url) as client, client.pipeline(transaction=False) as pipe:
        for job_id in ids:
            pipe.hset(f"{KEY_PREFIX}job:{job_id}", mapping=fields)
        pipe.execute()
    return ids


def count_http(
    build: BuildName,
    path: CountedPath,
    redis_url: str,
    tmp: Path,
    warm_up_s: int = WARM_UP_S,
    measured_s: int = MEASURED_S,
    source: Source | None = None,
) -> InstructionCount:
    """Instructions per request of one build on one HTTP path."""
    source = source or Source()
    port = free_port()
    out = tmp / f"callgrind.{build}.{path}"
    env = {**os.environ, "REDIS_URL": redis_url, "PORT": str(port), "WEB_CONCURRENCY": "1"}
    ids_file = tmp / f"ids.{build}.{path}"
    if path == "poll":
        ids_file.write_text("\n".join(succeeded_jobs(redis_url, POLLED_JOBS)) + "\n")
    url = f"http://127.0.0.1:{port}"
    command = [source.python, "-m", "bench.apps.serve", *BUILDS[build]]
    log = tmp / f"{build}.{path}.log"
    with _under_callgrind(command, {**env, **QUIET}, out, log, source.root) as process:
        wait_until_ready(url, process, log, START_TIMEOUT_S)
        _wrk(url, path, warm_up_s, ids_file)
        _control(process.pid, "--instr=on")
        requests = _wrk(url, path, measured_s, ids_file)
        _control(process.pid, "--instr=off", "--dump")
    return InstructionCount.of(requests, _total(tmp, out))


def enqueue(redis_url: str, count: int) -> None:
    """`count` jobs submitted as the API submits a batch (JobStore.submit_many): one script
    call, so that a consumer already waiting finds them all at once."""

    async def submit() -> None:
        client = redis.asyncio.Redis.from_url(redis_url)
        try:
            store = JobStore(client, Keys(KEY_PREFIX), 86_400, stream_maxlen=10**9)
            admitted = await store.submit_many([orjson.dumps("some_input_data")] * count)
        finally:
            await client.aclose()
        refused = [admission for _, admission in admitted if admission.verdict != "ok"]
        if refused:
            raise RuntimeError(f"{len(refused)} of {count} jobs refused: {refused[0]}")

    asyncio.run(submit())


def _completed(redis_url: str) -> int:
    with redis.Redis.from_url(redis_url) as client:
        return int(client.get(Keys(KEY_PREFIX).completed) or 0)


def _wait_for_completed(redis_url: str, target: int, log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while _completed(redis_url) < target:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the consumer did not finish its jobs:\n{log.read_text()}")
        time.sleep(0.2)


def count_finish(
    redis_url: str, tmp: Path, jobs: int = FINISHED_JOBS, source: Source | None = None
) -> InstructionCount:
    """A standalone worker's instructions per job finished."""
    source = source or Source()
    out = tmp / "callgrind.tuned.finish"
    log = tmp / "tuned.finish.log"
    env = {**os.environ, "REDIS_URL": redis_url, **CONSUMER}
    command = [source.python, "-m", "service", "worker"]
    with redis.Redis.from_url(redis_url) as client:
        if client.xlen(Keys(KEY_PREFIX).stream):
            raise RuntimeError("the job stream must be empty before a consumer is counted")
    start = _completed(redis_url)
    with _under_callgrind(command, env, out, log, source.root) as process:
        # Jobs submitted before the worker runs are its warm-up; once they are finished, it
        # waits on an empty stream.
        enqueue(redis_url, WARM_UP_JOBS)
        _wait_for_completed(redis_url, start + WARM_UP_JOBS, log, START_TIMEOUT_S)
        _control(process.pid, "--instr=on")
        enqueue(redis_url, jobs)
        _wait_for_completed(redis_url, start + WARM_UP_JOBS + jobs, log, START_TIMEOUT_S)
        _control(process.pid, "--instr=off", "--dump")
    return InstructionCount.of(jobs, _total(tmp, out))


def count(
    build: BuildName,
    path: CountedPath,
    redis_url: str,
    tmp: Path,
    warm_up_s: int = WARM_UP_S,
    measured_s: int = MEASURED_S,
    source: Source | None = None,
) -> InstructionCount:
    if path == "finish":
        return count_finish(redis_url, tmp, source=source)
    return count_http(build, path, redis_url, tmp, warm_up_s, measured_s, source)


def run(
    counted: Sequence[tuple[BuildName, CountedPath]] = COUNTED, source: Source | None = None
) -> InstructionsRun:
    """Count each (build, path) on a Redis of its own, emptied between counts; `source` is
    the tree and interpreter counted (this one unless `make bench-compare` says another)."""
    require_valgrind()
    results: dict[str, InstructionCount] = {}
    with tempfile.TemporaryDirectory(prefix="bench-instructions-") as tmp_name:
        tmp = Path(tmp_name)
        with EmbeddedRedis(tmp / "redis", port=free_port(), appendonly=False) as redis_server:
            for build, path in counted:
                with redis.Redis.from_url(redis_server.url) as client:
                    client.flushall()  # the harness's own Redis, started above
                counted_here = count(build, path, redis_server.url, tmp, source=source)
                results[f"{build} {path}"] = counted_here
    return InstructionsRun(results)
