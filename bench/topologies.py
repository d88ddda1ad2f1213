"""One Redis against a 3-primary Redis Cluster, side by side in one run: async jobs finished per
second over HTTP, polls per second, the Redis CPU each costs (every node, primaries and
replicas), the API's CPU per request, and what `REDIS_WAIT_REPLICAS=1` adds to a submit's
latency on the Cluster. docs/capacity.md turns these into shards and cores for a target rate.

`python -m bench.topologies` (`make bench-topologies`), and the last part of `make bench`
(BENCH_TOPOLOGIES=0 skips it). BENCH_TOPOLOGY_DURATION seconds per measurement,
BENCH_TOPOLOGY_ROUNDS rounds, the two topologies in alternating order from round to round;
wrk on BENCH_TOPOLOGY_CONNECTIONS connections for throughput, and a closed loop of
BENCH_TOPOLOGY_LATENCY_CONNECTIONS for the submit latency with and without WAIT.

Both topologies run with the same persistence (AOF, fsync every second), their Redis processes
(every thread) pinned to the load generator's cores, the API (`python -m service serve`, one
worker, its stream consumers in-process as `make run` has them) on the server core. Redis CPU
is the delta of `INFO cpu` (used_cpu_user + used_cpu_sys) summed over every node; a replica's
work to apply the stream is part of what a job costs on the Cluster. API CPU is psutil's over
the gunicorn processes; for the async figure it includes the in-process consumers that finish
the jobs, so it is per job end to end, not per submit alone.
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import orjson
import psutil
import redis
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from bench.builds import BUILDS, started
from bench.config import BenchConfig
from bench.load import GeneratorSaturatedError, WrkMissingError, run_wrk, wrk_binary
from bench.placement import Placement, default_placement
from bench.results import LoadRun
from bench.scenarios import MOCK_BODY, POLL_IDS
from service.server.embedded_redis import EmbeddedRedis, find_redis_server
from service.server.process import ServerProcess, free_port
from service.server.redis_topology import LocalCluster
from service.storage.keys import Keys

TopologyName = Literal["single", "cluster"]
TOPOLOGIES: tuple[TopologyName, ...] = ("single", "cluster")
LABELS: dict[TopologyName, str] = {"single": "one Redis", "cluster": "Cluster 3+3"}
KEY_PREFIX = "pred:"
PRIMARIES = 3
MIN_REDIS_MAJOR = 7
DRAIN_TIMEOUT_S = 60.0
DRAIN_POLL_S = 0.02
# Every submit is accepted (no 429 from admission control), so that the figure is the jobs
# the topology finishes, not the share the queue bound lets in.
MAX_QUEUE = 10_000_000
IDLE_S = 1.0


class TopologyConfig(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BENCH_TOPOLOGY_", frozen=True)

    enabled: bool = Field(True, validation_alias="BENCH_TOPOLOGIES")
    duration: float = Field(3.0, gt=0)
    rounds: int = Field(3, ge=1)
    connections: int = Field(32, ge=1)
    # The submit latency's load: a closed loop of this many connections.
    latency_connections: int = Field(4, ge=1)


@dataclass(frozen=True, slots=True)
class Spread:
    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float]) -> "Spread":
        if not values:
            raise ValueError("no values")
        return cls(statistics.median(values), min(values), max(values))


def per_unit_us(cpu_s: float, units: int) -> float:
    """CPU microseconds per unit (job, request); nan when nothing was done."""
    return cpu_s / units * 1e6 if units > 0 else float("nan")


@dataclass(frozen=True, slots=True)
class Work:
    """`units` jobs or requests done in `seconds`, and the CPU seconds Redis (every node, and
    the primaries alone) and the API spent."""

    units: int
    seconds: float
    redis_cpu_s: float
    primaries_cpu_s: float
    api_cpu_s: float
    # Busy share of the API's cores and of the Redis and wrk cores while wrk ran: which side
    # set the pace.
    api_core_busy: float = float("nan")
    redis_core_busy: float = float("nan")
    per_s: float = field(init=False)
    redis_us_per_unit: float = field(init=False)
    primaries_us_per_unit: float = field(init=False)
    api_us_per_unit: float = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "per_s", self.units / self.seconds if self.seconds else 0.0)
        object.__setattr__(self, "redis_us_per_unit", per_unit_us(self.redis_cpu_s, self.units))
        object.__setattr__(
            self, "primaries_us_per_unit", per_unit_us(self.primaries_cpu_s, self.units)
        )
        object.__setattr__(self, "api_us_per_unit", per_unit_us(self.api_cpu_s, self.units))


@dataclass(frozen=True, slots=True)
class TopologyRound:
    topology: TopologyName
    round: int
    jobs: Work
    polls: Work


@dataclass(frozen=True, slots=True)
class SubmitLatency:
    wait_replicas: int
    round: int
    connections: int
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    # WAIT commands the primaries ran per submit: 0 without the setting; with it, at most 1
    # (auto-pipelining sends one WAIT for the submits of one flush).
    waits_per_submit: float


@dataclass(frozen=True, slots=True)
class TopologiesRun:
    started: str
    placement: str
    redis_server: str
    duration_s: float
    connections: int
    rounds: tuple[TopologyRound, ...]
    latency: tuple[SubmitLatency, ...]
    # Redis CPU milliseconds per second with no load, every node: cron, cluster bus, replication
    # pings; part of every per-job figure above.
    idle_redis_ms_per_s: dict[TopologyName, float]
    seconds: float


Metric = Callable[[TopologyRound], float]
METRICS: tuple[tuple[str, Metric, str], ...] = (
    ("async jobs/s, finished over HTTP", lambda r: r.jobs.per_s, ",.0f"),
    ("poll rps", lambda r: r.polls.per_s, ",.0f"),
    ("Redis CPU per job, all nodes (us)", lambda r: r.jobs.redis_us_per_unit, ",.1f"),
    ("Redis CPU per poll, all nodes (us)", lambda r: r.polls.redis_us_per_unit, ",.1f"),
    ("Redis CPU per job, primaries only (us)", lambda r: r.jobs.primaries_us_per_unit, ",.1f"),
    ("Redis CPU per poll, primaries only (us)", lambda r: r.polls.primaries_us_per_unit, ",.1f"),
    ("API CPU per job, submit + consume (us)", lambda r: r.jobs.api_us_per_unit, ",.1f"),
    ("API CPU per poll (us)", lambda r: r.polls.api_us_per_unit, ",.1f"),
    ("API core busy, submits", lambda r: r.jobs.api_core_busy, ".0%"),
    ("Redis + wrk core busy, submits", lambda r: r.jobs.redis_core_busy, ".0%"),
    ("API core busy, polls", lambda r: r.polls.api_core_busy, ".0%"),
    ("Redis + wrk core busy, polls", lambda r: r.polls.redis_core_busy, ".0%"),
)


def spread_of(rounds: Sequence[TopologyRound], topology: TopologyName, metric: Metric) -> Spread:
    return Spread.of([metric(r) for r in rounds if r.topology == topology])


def ratio_spread(rounds: Sequence[TopologyRound], metric: Metric) -> Spread | None:
    """Cluster over one Redis, one ratio per round (same round, same machine state); None
    when no round has both, or one Redis's figure is 0 (a core not metered, unpinned)."""
    by_round: dict[int, dict[TopologyName, float]] = {}
    for r in rounds:
        by_round.setdefault(r.round, {})[r.topology] = metric(r)
    ratios = [
        pair["cluster"] / pair["single"]
        for pair in by_round.values()
        if len(pair) == 2 and pair["single"]
    ]
    return Spread.of(ratios) if ratios else None


def _cell(spread: Spread | None, fmt: str) -> str:
    if spread is None:
        return "-"
    return f"{spread.median:{fmt}} ({spread.low:{fmt}}-{spread.high:{fmt}})"


def summary(run: TopologiesRun) -> dict[str, dict[str, Spread | None]]:
    """Every metric's median and range per topology, and the same-round ratio."""
    return {
        name: {
            **{topology: spread_of(run.rounds, topology, metric) for topology in TOPOLOGIES},
            "cluster/single": ratio_spread(run.rounds, metric),
        }
        for name, metric, _ in METRICS
    }


def render(run: TopologiesRun) -> str:
    """The markdown tables of a run: medians with (min-max) over its rounds."""
    figures = summary(run)
    lines = [
        f"# Redis topologies, {run.started}",
        "",
        f"{len({r.round for r in run.rounds})} rounds of {run.duration_s:g} s per measurement, "
        f"{run.connections} wrk connections; {run.placement}; {run.redis_server}. "
        "Median (min-max) over the rounds; the ratio is the median of same-round ratios.",
        "",
        f"| figure | {LABELS['single']} | {LABELS['cluster']} | cluster / single |",
        "|---|---|---|---|",
    ]
    for name, _, fmt in METRICS:
        row = figures[name]
        lines.append(
            f"| {name} | {_cell(row['single'], fmt)} | {_cell(row['cluster'], fmt)} | "
            f"{_cell(row['cluster/single'], '.2f') if not fmt.endswith('%') else ''} |"
        )
    if run.latency:
        connections = run.latency[0].connections
        lines += [
            "",
            f"Submit latency on the Cluster, closed loop of {connections} wrk connections "
            "(async POST /predict), median (min-max) over the rounds:",
            "",
            "| REDIS_WAIT_REPLICAS | submits/s | p50 (ms) | p99 (ms) | WAITs per submit |",
            "|---|---|---|---|---|",
        ]
        for wait in sorted({s.wait_replicas for s in run.latency}):
            samples = [s for s in run.latency if s.wait_replicas == wait]
            lines.append(
                f"| {wait} | {_cell(Spread.of([s.rps for s in samples]), ',.0f')} | "
                f"{_cell(Spread.of([s.p50_ms for s in samples]), '.2f')} | "
                f"{_cell(Spread.of([s.p99_ms for s in samples]), '.2f')} | "
                f"{_cell(Spread.of([s.waits_per_submit for s in samples]), '.2f')} |"
            )
    idle = ", ".join(
        f"{LABELS[name]} {run.idle_redis_ms_per_s[name]:.1f}"
        for name in TOPOLOGIES
        if name in run.idle_redis_ms_per_s
    )
    lines += [
        "",
        f"Idle Redis CPU, every node, ms per s (included in the per-job figures): {idle}.",
        "",
        f"Measured in {run.seconds:.0f} s.",
    ]
    return "\n".join(lines) + "\n"


def to_json(run: TopologiesRun) -> bytes:
    return orjson.dumps(
        {"run": run, "summary": summary(run)},
        option=orjson.OPT_INDENT_2,
    )


def write(out: Path, run: TopologiesRun) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / "topologies.json").write_bytes(to_json(run))
    table = out / "topologies.md"
    table.write_text(render(run))
    return table


# The measuring side: processes started, metered and stopped here.


def redis_version(binary: Path) -> tuple[int, ...]:
    done = subprocess.run([str(binary), "--version"], capture_output=True, text=True, check=True)
    version = next(word for word in done.stdout.split() if word.startswith("v="))
    return tuple(int(part) for part in version.removeprefix("v=").split("."))


def _pin_every_thread(pid: int, placement: Placement) -> None:
    """Redis's background threads too (`taskset -a`), on the load generator's cores."""
    if placement.server_cpus:
        cpus = ",".join(map(str, sorted(placement.load_cpus)))
        subprocess.run(
            ["taskset", "-a", "-p", "--cpu-list", cpus, str(pid)],
            check=True,
            stdout=subprocess.DEVNULL,
        )


def _process_tree_cpu_s(pid: int) -> float:
    """user + system CPU seconds of a process and its living descendants."""
    root = psutil.Process(pid)
    total = 0.0
    for process in [root, *root.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


@dataclass
class Deployment:
    """One topology with the API served on it; every Redis node's port, for `INFO cpu`."""

    name: TopologyName
    ports: list[int]
    primary_ports: list[int]
    keys: Keys
    counter: redis.Redis | redis.RedisCluster
    api: ServerProcess
    wait_api: ServerProcess | None = None

    def redis_cpu_s(self) -> dict[int, float]:
        """user + system CPU seconds of each node, by port."""
        seconds = {}
        for port in self.ports:
            with redis.Redis(host="127.0.0.1", port=port) as client:
                cpu = client.info("cpu")
            seconds[port] = float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])
        return seconds

    def cpu_mark(self) -> tuple[float, float, float]:
        """CPU seconds so far: every Redis node's, the primaries', the API's."""
        nodes = self.redis_cpu_s()
        primaries = sum(nodes[port] for port in self.primary_ports)
        return sum(nodes.values()), primaries, _process_tree_cpu_s(self.api.process.pid)

    def work_since(
        self, mark: tuple[float, float, float], units: int, seconds: float, load: LoadRun
    ) -> Work:
        now = self.cpu_mark()
        return Work(
            units,
            seconds,
            redis_cpu_s=now[0] - mark[0],
            primaries_cpu_s=now[1] - mark[1],
            api_cpu_s=now[2] - mark[2],
            api_core_busy=load.server_core_busy,
            redis_core_busy=load.load_core_busy,
        )

    def idle_redis_ms_per_s(self, seconds: float = IDLE_S) -> float:
        before = sum(self.redis_cpu_s().values())
        time.sleep(seconds)
        return (sum(self.redis_cpu_s().values()) - before) / seconds * 1000

    def waits(self) -> int:
        """WAIT commands the primaries have run."""
        total = 0
        for port in self.primary_ports:
            with redis.Redis(host="127.0.0.1", port=port) as client:
                total += int(client.info("commandstats").get("cmdstat_wait", {}).get("calls", 0))
        return total

    def completed(self) -> int:
        values = [self.counter.get(shard.completed) for shard in self.keys.shards]
        return sum(int(value or 0) for value in values)

    def finished_ids(self, limit: int = POLL_IDS) -> list[str]:
        ids: list[str] = []
        for port in self.primary_ports:
            with redis.Redis(host="127.0.0.1", port=port) as client:
                for key in client.scan_iter(match=f"{KEY_PREFIX}*job:*", count=5000):
                    ids.append(key.decode().rsplit("job:", 1)[1])
                    if len(ids) >= limit:
                        return ids
        return ids


def _api_env(redis_url: str, **extra: str) -> dict[str, str]:
    return {
        "REDIS_URL": redis_url,
        "KEY_PREFIX": KEY_PREFIX,
        "MODEL": "mock",
        "MAX_QUEUE": str(MAX_QUEUE),
        **extra,
    }


@contextmanager
def deployments(placement: Placement, tmp: Path) -> Iterator[dict[TopologyName, Deployment]]:
    with ExitStack() as stack:
        single_port = free_port()
        single = EmbeddedRedis(tmp / "single", port=single_port)
        stack.enter_context(single)
        assert single.process is not None
        _pin_every_thread(single.process.pid, placement)
        cluster = stack.enter_context(
            LocalCluster(tmp / "cluster", primaries=PRIMARIES, replicas_per_primary=1)
        )
        for node in cluster.nodes:
            assert node.process is not None
            _pin_every_thread(node.process.pid, placement)
        tuned = BUILDS["tuned"]
        single_api = stack.enter_context(
            started(tuned, placement, _api_env(single.url), tmp / "api-single")
        )
        cluster_api = stack.enter_context(
            started(tuned, placement, _api_env(cluster.url), tmp / "api-cluster")
        )
        wait_api = stack.enter_context(
            started(
                tuned,
                placement,
                _api_env(cluster.url, REDIS_WAIT_REPLICAS="1"),
                tmp / "api-cluster-wait",
            )
        )
        first = cluster.nodes[0]
        single_client = stack.enter_context(redis.Redis(host="127.0.0.1", port=single_port))
        cluster_client = redis.RedisCluster(host="127.0.0.1", port=first.port)
        stack.callback(cluster_client.close)
        yield {
            "single": Deployment(
                "single",
                [single_port],
                [single_port],
                Keys(KEY_PREFIX),
                single_client,
                single_api,
            ),
            "cluster": Deployment(
                "cluster",
                [node.port for node in cluster.nodes],
                [node.port for node in cluster.primaries()],
                Keys(KEY_PREFIX, shards=PRIMARIES, tagged=True),
                cluster_client,
                cluster_api,
                wait_api,
            ),
        }


def _wrk(
    url: str,
    scenario: str,
    placement: Placement,
    cfg: TopologyConfig,
    env: dict[str, str],
    connections: int | None = None,
) -> LoadRun:
    return run_wrk(
        url,
        scenario,
        script="poll.lua" if scenario == "poll" else "post.lua",
        connections=connections or cfg.connections,
        duration_s=cfg.duration,
        placement=placement,
        env=env,
    )


SUBMIT_ENV = {"BENCH_BODY": MOCK_BODY, "BENCH_ASYNC": "true"}


def measure_jobs(deployment: Deployment, placement: Placement, cfg: TopologyConfig) -> Work:
    """wrk submits for `duration`, then the wait until the consumers have finished every
    accepted job: jobs finished over the time from the first submit to the last finish."""
    before = deployment.completed()
    mark = deployment.cpu_mark()
    start = time.monotonic()
    load = _wrk(deployment.api.url, "async", placement, cfg, SUBMIT_ENV)
    accepted = load.requests - sum(load.errors.values())
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while (done := deployment.completed() - before) < accepted:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{deployment.name}: {done} of {accepted} jobs finished")
        time.sleep(DRAIN_POLL_S)
    return deployment.work_since(mark, done, time.monotonic() - start, load)


def measure_polls(
    deployment: Deployment, placement: Placement, cfg: TopologyConfig, tmp: Path
) -> Work:
    ids_file = tmp / f"ids-{deployment.name}.txt"
    ids = deployment.finished_ids()
    if not ids:
        raise RuntimeError(f"{deployment.name}: no finished job to poll")
    ids_file.write_text("\n".join(ids) + "\n")
    mark = deployment.cpu_mark()
    load = _wrk(deployment.api.url, "poll", placement, cfg, {"BENCH_IDS_FILE": str(ids_file)})
    return deployment.work_since(mark, load.requests, load.duration_s, load)


def measure_latency(
    cluster: Deployment, wait: int, index: int, placement: Placement, cfg: TopologyConfig
) -> SubmitLatency:
    api = cluster.wait_api if wait else cluster.api
    assert api is not None
    waits = cluster.waits()
    load = _wrk(api.url, f"submit WAIT={wait}", placement, cfg, SUBMIT_ENV, cfg.latency_connections)
    return SubmitLatency(
        wait_replicas=wait,
        round=index,
        connections=cfg.latency_connections,
        requests=load.requests,
        rps=load.rps,
        p50_ms=load.p50_ms,
        p99_ms=load.p99_ms,
        waits_per_submit=(cluster.waits() - waits) / max(1, load.requests),
    )


def measure(cfg: TopologyConfig, placement: Placement, label: str) -> TopologiesRun:
    binary = find_redis_server()
    placement.pin_load(os.getpid())
    clock = time.monotonic()
    rounds: list[TopologyRound] = []
    latency: list[SubmitLatency] = []
    with tempfile.TemporaryDirectory(prefix="bench-topologies-") as tmp_name:
        tmp = Path(tmp_name)
        with deployments(placement, tmp) as deployed:
            idle = {name: deployed[name].idle_redis_ms_per_s() for name in TOPOLOGIES}
            for index in range(cfg.rounds):
                order = TOPOLOGIES if index % 2 == 0 else TOPOLOGIES[::-1]
                for name in order:
                    deployment = deployed[name]
                    jobs = measure_jobs(deployment, placement, cfg)
                    polls = measure_polls(deployment, placement, cfg, tmp)
                    rounds.append(TopologyRound(name, index, jobs, polls))
                    print(
                        f"topologies: round {index + 1} {LABELS[name]}: "
                        f"{jobs.per_s:,.0f} jobs/s, {polls.per_s:,.0f} polls/s",
                        flush=True,
                    )
            for index in range(cfg.rounds):
                for wait in (0, 1) if index % 2 == 0 else (1, 0):
                    latency.append(
                        measure_latency(deployed["cluster"], wait, index, placement, cfg)
                    )
    version = ".".join(map(str, redis_version(binary)))
    return TopologiesRun(
        started=label,
        placement=placement.describe(),
        redis_server=f"redis-server {version}",
        duration_s=cfg.duration,
        connections=cfg.connections,
        rounds=tuple(rounds),
        latency=tuple(latency),
        idle_redis_ms_per_s=idle,
        seconds=time.monotonic() - clock,
    )


def run_into(out: Path, placement: Placement, cfg: TopologyConfig | None = None) -> int:
    """Measure and write topologies.json and topologies.md into `out`, print the table; the
    exit code (0 also when skipped for want of Redis 7)."""
    cfg = cfg or TopologyConfig()
    version = redis_version(find_redis_server())
    if version[0] < MIN_REDIS_MAJOR:
        print(
            f"topologies: skipped: redis-server {'.'.join(map(str, version))} is older than "
            f"{MIN_REDIS_MAJOR} (sharded pub/sub); put Redis 7 on PATH (REDIS_SERVER_BIN)",
            file=sys.stderr,
        )
        return 0
    try:
        run = measure(cfg, placement, datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))
    except GeneratorSaturatedError as exc:
        print(f"topologies: refused to report a saturated load generator: {exc}", file=sys.stderr)
        return 3
    table = write(out, run)
    print(table.read_text())
    print(f"topologies: {table}")
    return 0


def main() -> int:
    try:
        wrk_binary()
    except WrkMissingError as exc:
        print(f"make bench-topologies: {exc}", file=sys.stderr)
        return 2
    out = BenchConfig().reports_dir / f"topologies-{time.strftime('%Y%m%d-%H%M%S')}"
    return run_into(out, default_placement())


if __name__ == "__main__":
    raise SystemExit(main())
