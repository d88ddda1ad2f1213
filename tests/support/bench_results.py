"""Made-up benchmark results, for the harness's decisions and its report without a run."""

from dataclasses import replace

from bench.bars import bars
from bench.config import BenchConfig
from bench.figures import FIGURES
from bench.lineup import ORDER, BuildName
from bench.results import (
    AsyncRun,
    BuildFigures,
    FixedRateLatency,
    FixedRateRun,
    KneeShare,
    LoadRun,
    Ratio,
    RedisWorkCounts,
    RedisWorkPerRequest,
    Rounds,
    RunMeta,
    Scaling,
    SideBySideRun,
    Sweep,
    SweepPoint,
    TimeToResult,
    WorkerScaling,
)

CDF_MS = ((50.0, 1.0), (90.0, 2.0), (99.0, 3.0), (99.9, 4.0), (100.0, 5.0))


def load_run(
    rps: float,
    *,
    scenario: str = "sync",
    server_busy: float = 1.0,
    generator_cpu: float = 0.5,
    cdf_ms: tuple[tuple[float, float], ...] = CDF_MS,
) -> LoadRun:
    """A one-second wrk run of `rps` requests at 32 connections."""
    return LoadRun(scenario, 32, 1.0, round(rps), {}, cdf_ms, server_busy, 1.0, generator_cpu)


def fixed_rate_run(p99_ms: float, achieved_rate: float) -> FixedRateRun:
    return FixedRateRun(
        target_rate=1000.0,
        achieved_rate=achieved_rate,
        duration_s=1.0,
        scheduled=1000,
        completed=round(achieved_rate),
        errors={},
        p50_ms=p99_ms / 2,
        p90_ms=p99_ms / 2,
        p99_ms=p99_ms,
        p999_ms=p99_ms,
        max_ms=p99_ms,
        connections=8,
        client_lag_p50_ms=0.0,
        client_lag_p99_ms=0.1,
    )


def ratios_of(vs_seed: float, vs_bound: float) -> dict[str, Ratio]:
    """The same ratio for every figure."""
    return {figure: Ratio(vs_seed, vs_bound) for figure in FIGURES}


def build_figures(rps: float) -> BuildFigures:
    """A build's throughput figures, every one `rps` per second; nothing of `make bench`'s own
    scenarios."""
    sync = load_run(rps)
    jobs = AsyncRun(load_run(rps, scenario="async"), round(rps), round(rps), rps)
    poll = load_run(rps, scenario="poll")
    return BuildFigures(sync, jobs, poll, Rounds((sync,), (jobs,), (poll,)))


def _per_request(round_trips: float) -> RedisWorkPerRequest:
    return RedisWorkPerRequest(round_trips, {"hset": round_trips} if round_trips else {})


def _full_build(rps: float, supports_long_poll: bool) -> BuildFigures:
    points = (SweepPoint(1, rps / 4, 1.0), SweepPoint(16, rps, 10.0))
    strategies = [("poll every 10ms", True), ("long-poll wait=2s", supports_long_poll)]
    return replace(
        build_figures(rps),
        sweep=Sweep(25.0, points, points[-1]),
        redis_work=RedisWorkCounts(
            20, _per_request(0), _per_request(1), _per_request(1), _per_request(1)
        ),
        time_to_result=tuple(
            TimeToResult(name, 80, 80, supported, 60.0, 90.0, 100.0, 2.0, 0.1)
            for name, supported in strategies
        ),
        models={"MOCK_CPU_MS=1": load_run(rps / 2)},
    )


BUILD_RPS: dict[BuildName, float] = {"tuned": 20_000.0, "seed": 4_000.0, "bound": 30_000.0}


def full_run(config: BenchConfig) -> SideBySideRun:
    """What `make bench` measures, every scenario included; the tuned build alone long-polls."""
    ratios = ratios_of(
        BUILD_RPS["tuned"] / BUILD_RPS["seed"], BUILD_RPS["tuned"] / BUILD_RPS["bound"]
    )
    fixed = FixedRateLatency(
        load=KneeShare(2800.0, "70% of the seed build's knee"),
        builds={name: fixed_rate_run(2.0, 2800.0) for name in ORDER},
        tuned_own_load=KneeShare(14000.0, "70% of the tuned build's knee"),
        tuned_at_own_load=fixed_rate_run(4.0, 14000.0),
    )
    scaling = Scaling(
        64,
        "not pinned",
        {
            name: WorkerScaling(load_run(BUILD_RPS[name]), load_run(1.8 * BUILD_RPS[name]), 1.8)
            for name in ("tuned", "seed")
        },
    )
    return SideBySideRun(
        builds={name: _full_build(BUILD_RPS[name], name == "tuned") for name in ORDER},
        ratios=ratios,
        bars=bars(ratios, scaling, fixed),
        meta=RunMeta("make bench", "made-up", 60.0, "not pinned", config, "wrk 4.2.0"),
        fixed_rate=fixed,
        scaling=scaling,
    )
