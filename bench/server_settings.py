"""`make bench-settings`: the server settings the tuned build ships with, each measured against
its alternatives on this machine, one setting at a time, the others at their defaults.

gunicorn.conf.py and the README's settings table cite these figures. Each experiment starts
the tuned build once per variant (server pinned to its core, load on the other, as in `make
bench`), so a variant's figures are comparable within its experiment, not across runs.
"""

import asyncio
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import uvloop

from bench.builds import BUILDS, started
from bench.config import BenchConfig
from bench.load import run_wrk
from bench.placement import Placement
from bench.results import (
    ConnectionBurst,
    ExperimentResult,
    JobRates,
    PollingLatency,
    SettingsRun,
    SyncThroughput,
    VariantFigures,
    to_json,
)
from bench.scenarios import MOCK_BODY, async_load, time_to_result
from bench.stats import percentile
from bench.time_to_result import summarize
from service.server.embedded_redis import EmbeddedRedis
from service.server.process import free_port

# url, placement, Redis URL, config, the variant's environment (BENCH_* names in it are the
# load generator's, the rest the server's).
Measure = Callable[[str, Placement, str, BenchConfig, dict[str, str]], VariantFigures]


@dataclass(frozen=True, slots=True)
class Experiment:
    setting: str
    question: str
    measure: Measure
    variants: dict[str, dict[str, str]]  # label -> environment of the tuned build
    default: str  # the label of what the service ships with
    env: dict[str, str] = field(default_factory=dict)  # for every variant
    connections: int | None = None  # wrk's, when not BENCH_CONNECTIONS


def _sync(
    url: str, placement: Placement, redis_url: str, cfg: BenchConfig, env: dict[str, str]
) -> SyncThroughput:
    """Sync throughput; with BENCH_CLOSE=true, every request on a new connection (what an
    expired keep-alive costs each request that comes back after it)."""
    load = run_wrk(
        url,
        "sync",
        script="post.lua",
        connections=cfg.connections,
        duration_s=cfg.duration,
        placement=placement,
        env={"BENCH_BODY": MOCK_BODY, "BENCH_CLOSE": env.get("BENCH_CLOSE", "false")},
        allow_errors=True,
    )
    return SyncThroughput(load.rps, load.p50_ms, load.p99_ms, sum(load.errors.values()))


BURST_CONNECTIONS = 1500


async def _burst(url: str, connections: int) -> ConnectionBurst:
    """`connections` clients connect at the same instant and each sends one sync request: the
    time from its connect call to its answer, through the listen queue."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = (
        f"POST /predict HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(MOCK_BODY)}\r\n\r\n{MOCK_BODY}"
    ).encode()
    start = asyncio.Event()

    async def one() -> float | None:
        await start.wait()
        began = time.perf_counter()
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 30)
            writer.write(request)
            status = await asyncio.wait_for(reader.readline(), 30)
            writer.close()
        except (OSError, TimeoutError):
            return None
        return (time.perf_counter() - began) * 1000 if b" 200 " in status else None

    tasks = [asyncio.create_task(one()) for _ in range(connections)]
    await asyncio.sleep(0.2)  # every task waiting on the event
    start.set()
    done = await asyncio.gather(*tasks)
    answered = sorted(ms for ms in done if ms is not None)

    return ConnectionBurst(
        connections=connections,
        failed=connections - len(answered),
        p50_ms=percentile(answered, 50, empty=0.0),
        p99_ms=percentile(answered, 99, empty=0.0),
        max_ms=answered[-1] if answered else 0.0,
    )


def _burst_measure(
    url: str, placement: Placement, redis_url: str, cfg: BenchConfig, env: dict[str, str]
) -> ConnectionBurst:
    return uvloop.run(_burst(url, BURST_CONNECTIONS))


def _async(
    url: str, placement: Placement, redis_url: str, cfg: BenchConfig, env: dict[str, str]
) -> JobRates:
    jobs = async_load(url, placement, redis_url, cfg.connections, cfg.duration)
    return JobRates(jobs.submitted_per_s, jobs.finished_per_s)


def _time_to_result(
    url: str, placement: Placement, redis_url: str, cfg: BenchConfig, env: dict[str, str]
) -> PollingLatency:
    measured = summarize(
        list(time_to_result(url, ("poll:10ms",), cfg.ttr_rate, cfg.ttr_duration_s))
    )
    return PollingLatency(measured.p50_ms, measured.p99_ms)


_CONSUMERS = {
    "1 consumer, batches of 32": {"WORKER_CONCURRENCY": "1", "MAX_BATCH_SIZE": "32"},
    "1 consumer, no batching": {"WORKER_CONCURRENCY": "1", "MAX_BATCH_SIZE": "1"},
    "1 consumer, batches of 64": {"WORKER_CONCURRENCY": "1", "MAX_BATCH_SIZE": "64"},
    "1 consumer, batches of 128": {"WORKER_CONCURRENCY": "1", "MAX_BATCH_SIZE": "128"},
    "2 consumers, batches of 32": {"WORKER_CONCURRENCY": "2", "MAX_BATCH_SIZE": "32"},
    "2 consumers, batches of 64": {"WORKER_CONCURRENCY": "2", "MAX_BATCH_SIZE": "64"},
    "2 consumers, batches of 128": {"WORKER_CONCURRENCY": "2", "MAX_BATCH_SIZE": "128"},
    "4 consumers, batches of 32": {"WORKER_CONCURRENCY": "4", "MAX_BATCH_SIZE": "32"},
}

EXPERIMENTS: tuple[Experiment, ...] = (
    Experiment(
        "WEB_CONCURRENCY",
        "worker processes per core: sync throughput, the server on one core",
        _sync,
        {"1 worker": {"WEB_CONCURRENCY": "1"}, "2 workers": {"WEB_CONCURRENCY": "2"}},
        "1 worker",
    ),
    Experiment(
        "keepalive (gunicorn.conf.py)",
        "what keep-alive saves: sync throughput when every request needs a new connection",
        _sync,
        {
            "keep-alive (connections reused)": {},
            "new connection per request": {"BENCH_CLOSE": "true"},
        },
        "keep-alive (connections reused)",
    ),
    Experiment(
        "backlog (gunicorn.conf.py)",
        f"{BURST_CONNECTIONS} clients connect at once, one request each: time to the answer",
        _burst_measure,
        {
            "backlog 2048": {"GUNICORN_CMD_ARGS": "--backlog 2048"},
            "backlog 128": {"GUNICORN_CMD_ARGS": "--backlog 128"},
        },
        "backlog 2048",
    ),
    Experiment(
        "LIMIT_CONCURRENCY",
        "uvicorn's limit on connections and tasks, at 256 busy connections: sync throughput",
        _sync,
        {"no limit": {}, "limit 128": {"LIMIT_CONCURRENCY": "128"}},
        "no limit",
        connections=256,
    ),
    Experiment(
        "WORKER_CONCURRENCY, MAX_BATCH_SIZE",
        "stream consumers per process and batch size: async jobs/s with an instant model",
        _async,
        _CONSUMERS,
        "2 consumers, batches of 64",
        # Room for every submit: the figure is how fast the consumers finish, not when the
        # queue refuses.
        env={"MAX_QUEUE": "1000000"},
    ),
    Experiment(
        "WORKER_CONCURRENCY, MAX_BATCH_SIZE (latency)",
        "the same, with a 50 ms model: time to result, polling every 10 ms, at 20 jobs/s",
        _time_to_result,
        _CONSUMERS,
        "2 consumers, batches of 64",
        env={"MOCK_LATENCY_MS": "50"},
    ),
)


@contextmanager
def _redis(placement: Placement, tmp: Path) -> Iterator[str]:
    server = EmbeddedRedis(tmp / "redis", port=free_port(), appendonly=False)
    with server:
        assert server.process is not None
        placement.pin_load(server.process.pid)
        yield server.url


def run(cfg: BenchConfig, placement: Placement, only: str | None = None) -> SettingsRun:
    placement.pin_load(0)
    experiments = []
    with tempfile.TemporaryDirectory(prefix="bench-settings-") as tmp_name:
        tmp = Path(tmp_name)
        with _redis(placement, tmp) as redis_url:
            for experiment in EXPERIMENTS:
                if only and only.lower() not in experiment.setting.lower():
                    continue
                rows = {}
                connections = experiment.connections or cfg.connections
                run_cfg = cfg.model_copy(update={"connections": connections})
                for label, env in experiment.variants.items():
                    full_env = {"REDIS_URL": redis_url, **experiment.env, **env}
                    with started(BUILDS["tuned"], placement, full_env, tmp / "served") as served:
                        rows[label] = experiment.measure(
                            served.url, placement, redis_url, run_cfg, env
                        )
                measured = ExperimentResult(
                    setting=experiment.setting,
                    question=experiment.question,
                    default=experiment.default,
                    columns=tuple(rows[experiment.default].cells()),
                    rows=rows,
                )
                experiments.append(measured)
                _print(measured)
    return SettingsRun(placement.describe(), tuple(experiments))


def _print(experiment: ExperimentResult) -> None:
    print(f"\n{experiment.setting}: {experiment.question}")
    columns = experiment.columns
    print(f"  {'':30}" + "".join(f"{c:>16}" for c in columns))
    for label, row in experiment.rows.items():
        mark = "*" if label == experiment.default else " "
        cells = row.cells()
        print(f"{mark} {label:30}" + "".join(f"{cells[c]:>16,.1f}" for c in columns))


def write(out: Path, results: SettingsRun) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    target = out / "settings.json"
    target.write_bytes(to_json(results))
    return target
