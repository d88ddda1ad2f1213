"""A side-by-side run: the three builds started together on the server core, each figure
measured for tuned, seed and bound back to back, so that they share the machine's conditions.
Two exceptions: the 2-worker scaling runs spread over every core, and Redis work is counted with
one build at a time on the Redis."""

import base64
import os
import secrets
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

from bench.bars import bars
from bench.builds import BUILDS, started
from bench.config import BenchConfig
from bench.figures import FIGURES
from bench.idle import cores_kept_awake
from bench.lineup import ORDER, REFERENCES, BuildName
from bench.load import wrk_binary
from bench.placement import Placement
from bench.results import (
    AsyncRun,
    BuildFigures,
    FixedRateLatency,
    InstructionsRun,
    KneeShare,
    LoadRun,
    Ratio,
    RedisWorkCounts,
    Rounds,
    RunMeta,
    Scaling,
    SideBySideRun,
    Sweep,
    TimeToResult,
    WorkerScaling,
)
from bench.scenarios import (
    IRIS_BODY,
    MOCK_BODY,
    async_load,
    finished_ids,
    fixed_rate,
    poll_load,
    redis_work,
    sweep,
    sync_load,
    time_to_result,
)
from bench.time_to_result import Sample, summarize
from service.server.embedded_redis import EmbeddedRedis
from service.server.process import ServerProcess, free_port


@contextmanager
def fleet(
    placement: Placement, env: Mapping[str, str], tmp: Path
) -> Iterator[dict[BuildName, ServerProcess]]:
    with ExitStack() as stack:
        yield {
            name: stack.enter_context(started(BUILDS[name], placement, env, tmp / name))
            for name in ORDER
        }


COUNT_MODEL_S = 2.0
# The tuned build's idle stream consumer repeats its blocking read every WORKER_BLOCK_MS and looks
# for stale jobs every CLAIM_IDLE_MS / 2. A count runs for about a minute (its 20 sync requests
# on the 2 s model alone take 40 s), so both are made longer, and neither lands in a count; a
# new job still wakes the blocked read at once. The block is capped at half the Redis socket
# timeout (service/settings.py), so that goes up too.
QUIET_CONSUMER = {
    "WORKER_BLOCK_MS": "120000",
    "REDIS_SOCKET_TIMEOUT_S": "300",
    "CLAIM_IDLE_MS": "600000",
}
# The fixed-rate latency bar's load: this share of a knee (the "70% of the knee load").
KNEE_SHARE = 0.7
SCALED_BUILDS: tuple[BuildName, ...] = ("tuned", "seed")


_Run = TypeVar("_Run", LoadRun, AsyncRun)


def round_order(index: int) -> tuple[BuildName, ...]:
    """The builds in round `index`: every other round reversed, so that no build is always
    measured first (on a warmer or a quieter machine) or last."""
    return ORDER if index % 2 == 0 else ORDER[::-1]


def _median_run(runs: tuple[_Run, ...], key: Callable[[_Run], float]) -> _Run:
    # The round whose figure is the median (the lower middle one of an even count): a
    # build's absolute figures in the tables are that round's.
    return sorted(runs, key=key)[(len(runs) - 1) // 2]


def median_of(rounds: Rounds) -> BuildFigures:
    return BuildFigures(
        sync=_median_run(rounds.sync, lambda run: run.rps),
        async_jobs=_median_run(rounds.async_jobs, lambda run: run.finished_per_s),
        poll=_median_run(rounds.poll, lambda run: run.rps),
        rounds=rounds,
    )


def throughput(
    cfg: BenchConfig, placement: Placement, redis_url: str, tmp: Path
) -> dict[BuildName, BuildFigures]:
    """sync, async and poll throughput at `cfg.connections`, in `cfg.rounds` interleaved
    rounds (every build's run of a figure back to back, the order alternating by round)."""
    sync_rounds: dict[BuildName, list[LoadRun]] = {name: [] for name in ORDER}
    async_rounds: dict[BuildName, list[AsyncRun]] = {name: [] for name in ORDER}
    poll_rounds: dict[BuildName, list[LoadRun]] = {name: [] for name in ORDER}
    # Room for every submit (MAX_QUEUE): the async figures are how fast jobs are accepted and
    # finished, not where the tuned build's backpressure starts refusing them (429).
    env = {"REDIS_URL": redis_url, "MAX_QUEUE": "1000000"}
    with fleet(placement, env, tmp / "throughput") as served:
        for index in range(cfg.rounds):
            order = round_order(index)
            for name in order:
                load = sync_load(served[name].url, placement, cfg.connections, cfg.duration)
                sync_rounds[name].append(load)
            for name in order:
                url = served[name].url
                jobs = async_load(url, placement, redis_url, cfg.connections, cfg.duration)
                async_rounds[name].append(jobs)
                ids_file = tmp / f"ids-{name}.txt"
                finished_ids(redis_url, ids_file)
                polls = poll_load(url, placement, ids_file, cfg.connections, cfg.duration)
                poll_rounds[name].append(polls)
    return {
        name: median_of(
            Rounds(tuple(sync_rounds[name]), tuple(async_rounds[name]), tuple(poll_rounds[name]))
        )
        for name in ORDER
    }


def _over(tuned: float, reference: float) -> float:
    return tuned / reference if reference else float("nan")


def _round(figures: BuildFigures, index: int) -> BuildFigures:
    rounds = figures.rounds
    return BuildFigures(
        rounds.sync[index], rounds.async_jobs[index], rounds.poll[index], rounds=rounds
    )


def ratios(builds: Mapping[BuildName, BuildFigures]) -> dict[str, Ratio]:
    """Each figure's median same-round ratio of the tuned build to each reference, and the
    range of those ratios."""
    count = len(builds["tuned"].rounds.sync)
    measured = {}
    for figure, of in FIGURES.items():
        per_round = {
            reference: [
                _over(of(_round(builds["tuned"], i)), of(_round(builds[reference], i)))
                for i in range(count)
            ]
            for reference in REFERENCES
        }
        measured[figure] = Ratio(
            vs_seed=statistics.median(per_round["seed"]),
            vs_bound=statistics.median(per_round["bound"]),
            seed_range=(min(per_round["seed"]), max(per_round["seed"])),
            bound_range=(min(per_round["bound"]), max(per_round["bound"])),
            rounds=count,
        )
    return measured


def _env_pairs(spec: str) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in spec.split())


def knee_load(measured: Sweep, build: str) -> KneeShare:
    """KNEE_SHARE of a build's knee rps, and what that load is; with no knee, of its best
    sweep rps."""
    knee = measured.knee
    share = f"{KNEE_SHARE:.0%}"
    if knee is not None:
        return KneeShare(
            KNEE_SHARE * knee.rps,
            f"{share} of the {build} build's knee ({knee.rps:,.0f} rps at "
            f"{knee.connections} connections)",
        )
    best = max(p.rps for p in measured.points)
    return KneeShare(
        KNEE_SHARE * best,
        f"the {build} build has no knee (no sweep level kept p99 under "
        f"{measured.p99_target_ms:g} ms): {share} of its best sweep rps ({best:,.0f})",
    )


def fixed_rate_latency(
    cfg: BenchConfig,
    sweeps: Mapping[BuildName, Sweep],
    served: Mapping[BuildName, ServerProcess],
) -> FixedRateLatency:
    """All three builds at one load, a share of the seed's knee; then the tuned build at the
    same share of its own knee."""
    load = knee_load(sweeps["seed"], "seed")
    at_seed_load = {
        name: fixed_rate(
            served[name].url, load.rate, cfg.fixed_rate_duration_s, cfg.fixed_rate_connections
        )
        for name in ORDER
    }
    own_load = knee_load(sweeps["tuned"], "tuned")
    return FixedRateLatency(
        load=load,
        builds=at_seed_load,
        tuned_own_load=own_load,
        tuned_at_own_load=fixed_rate(
            served["tuned"].url,
            own_load.rate,
            cfg.fixed_rate_duration_s,
            cfg.fixed_rate_connections,
        ),
    )


def scaling(
    cfg: BenchConfig, placement: Placement, redis_url: str, redis_pid: int, tmp: Path
) -> Scaling:
    """Sync throughput with 1 and 2 workers, nothing pinned: server, wrk and Redis share every
    core, as a 2-worker deployment on this machine would."""
    shared = placement.shared()
    shared.pin_load(redis_pid)
    builds: dict[BuildName, WorkerScaling] = {}
    try:
        for name in SCALED_BUILDS:
            runs = {}
            for workers in (1, 2):
                env = {"REDIS_URL": redis_url, "WEB_CONCURRENCY": str(workers)}
                with started(BUILDS[name], shared, env, tmp / "scaling" / name) as served:
                    # Ready means one worker answers; a second of load lets every worker start.
                    sync_load(served.url, shared, cfg.scaling_connections, 1)
                    runs[workers] = sync_load(
                        served.url, shared, cfg.scaling_connections, cfg.duration
                    )
            builds[name] = WorkerScaling(runs[1], runs[2], factor=runs[2].rps / runs[1].rps)
    finally:
        placement.pin_load(redis_pid)
    return Scaling(cfg.scaling_connections, shared.describe(), builds)


def webhook_env() -> dict[str, str]:
    """The tuned build's webhooks, to the harness's receiver on 127.0.0.1 over http, signed with a
    secret made for this run."""
    return {
        "WEBHOOK_SECRET": "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode(),
        "WEBHOOK_ALLOW_HTTP": "true",
        "WEBHOOK_ALLOW_PRIVATE": "true",
    }


def times_to_result(
    cfg: BenchConfig, placement: Placement, base: Mapping[str, str], tmp: Path
) -> dict[BuildName, tuple[TimeToResult, ...]]:
    """Each strategy against each build on a model of cfg.ttr_model_ms, in cfg.ttr_rounds
    interleaved rounds; a strategy's figures are of its jobs of every round. A strategy a build
    does not offer is found out in the first round and not run again."""
    slow = {**base, "MOCK_LATENCY_MS": str(cfg.ttr_model_ms), **webhook_env()}
    samples: dict[BuildName, list[tuple[Sample, ...]]] = {name: [] for name in ORDER}
    with fleet(placement, slow, tmp / "ttr") as served:
        for index in range(cfg.ttr_rounds):
            for name in round_order(index):
                first = samples[name][0] if samples[name] else ()
                unsupported = {s.strategy for s in first if not s.supported}
                samples[name].append(
                    time_to_result(
                        served[name].url,
                        cfg.ttr_strategies,
                        cfg.ttr_rate,
                        cfg.ttr_duration_s,
                        unsupported,
                    )
                )
    return {
        name: tuple(summarize(list(by_strategy)) for by_strategy in zip(*rounds, strict=True))
        for name, rounds in samples.items()
    }


def full_run(
    cfg: BenchConfig,
    placement: Placement,
    redis_url: str,
    redis_pid: int,
    tmp: Path,
    model_path: Path,
) -> tuple[dict[BuildName, BuildFigures], FixedRateLatency, Scaling]:
    """Every build's figures, the fixed-rate latency and the scaling runs."""
    builds = throughput(cfg, placement, redis_url, tmp)
    base = {"REDIS_URL": redis_url}
    with fleet(placement, base, tmp / "sweep") as served:
        sweeps = {
            name: sweep(
                served[name].url, placement, cfg.sweep, cfg.sweep_duration_s, cfg.p99_target_ms
            )
            for name in ORDER
        }
        latency = fixed_rate_latency(cfg, sweeps, served)
    scaled = scaling(cfg, placement, redis_url, redis_pid, tmp)
    # Counting needs a model slow enough that no job completes while its submit is counted, and
    # one build at a time on the Redis: another build's background commands would count too.
    # No queue sampling either: its once-a-second script would land in the counts.
    counted = {**base, "MOCK_LATENCY_MS": str(COUNT_MODEL_S * 1000), "QUEUE_SAMPLE_S": "0"}
    redis_works: dict[BuildName, RedisWorkCounts] = {}
    for name in ORDER:
        env = {**counted, **QUIET_CONSUMER} if name == "tuned" else counted
        with started(BUILDS[name], placement, env, tmp / "counts" / name) as alone:
            # A stream consumer runs the jobs in batches, one model call after another: the
            # first job alone, the rest in the next call. Two calls, and a margin, settle it.
            redis_works[name] = redis_work(alone.url, redis_url, 2 * COUNT_MODEL_S + 1)
    times = times_to_result(cfg, placement, base, tmp)
    models: list[tuple[str, dict[str, str], str]] = [
        (spec, _env_pairs(spec), MOCK_BODY) for spec in cfg.model_runs
    ]
    if cfg.iris:
        models.append(("MODEL=iris", {"MODEL": "iris", "MODEL_PATH": str(model_path)}, IRIS_BODY))
    model_runs: dict[BuildName, dict[str, LoadRun]] = {name: {} for name in ORDER}
    for label, env, body in models:
        with fleet(placement, {**base, **env}, tmp / "models") as served:
            for name in ORDER:
                load = sync_load(served[name].url, placement, cfg.connections, cfg.duration, body)
                model_runs[name][label] = load
    complete = {
        name: replace(
            builds[name],
            sweep=sweeps[name],
            redis_work=redis_works[name],
            time_to_result=times[name],
            models=model_runs[name],
        )
        for name in ORDER
    }
    return complete, latency, scaled


def side_by_side(
    cfg: BenchConfig,
    placement: Placement,
    *,
    full: bool,
    model_path: Path,
    label: str,
    instructions: InstructionsRun | None = None,
) -> SideBySideRun:
    """Start our own Redis on the load cores, then measure; `full=False` is the CI gate's run."""
    placement.pin_load(os.getpid())
    started = time.monotonic()
    fixed: FixedRateLatency | None = None
    scaled: Scaling | None = None
    with (
        tempfile.TemporaryDirectory(prefix="bench-") as tmp_name,
        cores_kept_awake(cfg.keep_cores_awake) as idle_states,
    ):
        tmp = Path(tmp_name)
        redis_server = EmbeddedRedis(tmp / "redis", port=free_port(), appendonly=False)
        with redis_server:
            assert redis_server.process is not None
            placement.pin_load(redis_server.process.pid)
            if full:
                builds, fixed, scaled = full_run(
                    cfg, placement, redis_server.url, redis_server.process.pid, tmp, model_path
                )
            else:
                builds = throughput(cfg, placement, redis_server.url, tmp)
    measured = ratios(builds)
    wrk = subprocess.run([wrk_binary(), "--version"], capture_output=True, text=True, check=False)
    meta = RunMeta(
        command="make bench" if full else "make gate",
        started=label,
        seconds=round(time.monotonic() - started, 1),
        placement=placement.describe(),
        config=cfg,
        wrk=(wrk.stdout or wrk.stderr).splitlines()[0],
        idle_states=idle_states,
    )
    return SideBySideRun(
        builds=builds,
        ratios=measured,
        bars=bars(
            measured,
            scaled,
            fixed,
            instructions=instructions,
            times={name: figures.time_to_result for name, figures in builds.items()},
            model_ms=cfg.ttr_model_ms,
        ),
        meta=meta,
        fixed_rate=fixed,
        scaling=scaled,
        instructions=instructions,
    )
