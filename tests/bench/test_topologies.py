"""bench.topologies: the arithmetic and the table from fixed figures, then one short real run."""

import math
from pathlib import Path

import orjson
import pytest

from bench import topologies
from bench.placement import Placement
from bench.topologies import (
    MIN_REDIS_MAJOR,
    Spread,
    SubmitLatency,
    TopologiesRun,
    TopologyConfig,
    TopologyRound,
    Work,
    measure,
    per_unit_us,
    ratio_spread,
    redis_version,
    render,
    run_into,
    spread_of,
    write,
)
from service.server.embedded_redis import find_redis_server


def _round(topology: str, index: int, jobs_per_s: float, redis_cpu_s: float) -> TopologyRound:
    jobs = Work(
        units=int(jobs_per_s * 2),
        seconds=2.0,
        redis_cpu_s=redis_cpu_s,
        primaries_cpu_s=redis_cpu_s / 2,
        api_cpu_s=1.0,
        api_core_busy=0.9,
        redis_core_busy=0.5,
    )
    polls = Work(units=10_000, seconds=2.0, redis_cpu_s=0.05, primaries_cpu_s=0.05, api_cpu_s=0.5)
    return TopologyRound(topology, index, jobs, polls)  # type: ignore[arg-type]


ROUNDS = (
    _round("single", 0, 1000, 0.2),
    _round("cluster", 0, 500, 0.3),
    _round("cluster", 1, 600, 0.3),
    _round("single", 1, 1500, 0.2),
    _round("single", 2, 1200, 0.2),
    _round("cluster", 2, 900, 0.3),
)
RUN = TopologiesRun(
    started="2026-12-04 07:00 UTC",
    placement="server on CPU [0], load generator and Redis on CPU [1]",
    redis_server="redis-server 7.0.15",
    duration_s=2.0,
    connections=32,
    rounds=ROUNDS,
    latency=(
        SubmitLatency(0, 0, 4, 2000, 1000.0, 2.0, 9.0, 0.0),
        SubmitLatency(1, 0, 4, 1800, 900.0, 3.0, 12.0, 0.25),
    ),
    idle_redis_ms_per_s={"single": 1.5, "cluster": 12.0},
    seconds=42.0,
)


def test_cpu_per_unit_is_the_delta_over_the_units_in_microseconds() -> None:
    assert per_unit_us(0.25, 5_000) == pytest.approx(50.0)
    assert math.isnan(per_unit_us(0.25, 0))
    work = Work(units=4_000, seconds=2.0, redis_cpu_s=0.2, primaries_cpu_s=0.12, api_cpu_s=0.6)
    assert work.per_s == 2_000
    assert work.redis_us_per_unit == pytest.approx(50.0)
    assert work.primaries_us_per_unit == pytest.approx(30.0)
    assert work.api_us_per_unit == pytest.approx(150.0)


def test_a_spread_is_the_median_and_the_range() -> None:
    assert Spread.of([3.0, 1.0, 2.0, 10.0]) == Spread(2.5, 1.0, 10.0)
    with pytest.raises(ValueError, match="no values"):
        Spread.of([])


def test_figures_are_per_topology_and_ratios_per_round() -> None:
    jobs = spread_of(ROUNDS, "single", lambda r: r.jobs.per_s)
    assert jobs == Spread(1200.0, 1000.0, 1500.0)
    # Same-round ratios 0.5, 0.4, 0.75: their median, not the ratio of the medians (0.5).
    assert ratio_spread(ROUNDS, lambda r: r.jobs.per_s) == Spread(0.5, 0.4, 0.75)


def test_a_round_missing_one_topology_gives_no_ratio() -> None:
    assert ratio_spread(ROUNDS[:3], lambda r: r.jobs.per_s) == Spread(0.5, 0.5, 0.5)
    assert ratio_spread(ROUNDS[1:3], lambda r: r.jobs.per_s) is None
    # Unpinned, no core is metered: a busy share of 0 is no denominator.
    assert ratio_spread(ROUNDS, lambda r: 0.0) is None


def test_the_table_shows_both_topologies_their_ratio_and_the_cost_of_wait() -> None:
    table = render(RUN)
    assert "| async jobs/s, finished over HTTP | 1,200 (1,000-1,500) | 600 (500-900) |" in table
    assert "| 0.50 (0.40-0.75) |" in table
    # 0.2 s of Redis CPU over 2,000, 3,000 and 2,400 jobs: 100, 66.7 and 83.3 us per job.
    assert "| Redis CPU per job, all nodes (us) | 83.3 (66.7-100.0) |" in table
    assert "| Redis CPU per job, primaries only (us) | 41.7 (33.3-50.0) |" in table
    assert (
        "| 1 | 900 (900-900) | 3.00 (3.00-3.00) | 12.00 (12.00-12.00) | 0.25 (0.25-0.25) |" in table
    )
    assert "one Redis 1.5, Cluster 3+3 12.0" in table
    assert "closed loop of 4 wrk connections" in table
    # A busy share has no ratio column.
    assert "| API core busy, submits | 90% (90%-90%) | 90% (90%-90%) |  |" in table


def test_the_report_files_hold_the_rounds_and_the_summary(tmp_path: Path) -> None:
    table = write(tmp_path, RUN)
    assert table.read_text() == render(RUN)
    saved = orjson.loads((tmp_path / "topologies.json").read_bytes())
    assert len(saved["run"]["rounds"]) == len(ROUNDS)
    assert saved["summary"]["poll rps"]["cluster/single"]["median"] == 1.0


def test_bench_topologies_0_turns_the_part_off(monkeypatch: pytest.MonkeyPatch) -> None:
    assert TopologyConfig().enabled
    monkeypatch.setenv("BENCH_TOPOLOGIES", "0")
    monkeypatch.setenv("BENCH_TOPOLOGY_DURATION", "1.5")
    cfg = TopologyConfig()
    assert not cfg.enabled
    assert cfg.duration == 1.5


def test_a_redis_older_than_7_is_skipped_with_a_message(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(topologies, "redis_version", lambda _binary: (6, 2, 14))
    assert run_into(tmp_path, Placement(frozenset(), frozenset())) == 0
    assert "skipped: redis-server 6.2.14 is older than 7" in capsys.readouterr().err
    assert not (tmp_path / "topologies.json").exists()


def _redis_7() -> bool:
    return redis_version(find_redis_server())[0] >= MIN_REDIS_MAJOR


@pytest.mark.served
@pytest.mark.wrk
@pytest.mark.skipif(not _redis_7(), reason="the Cluster needs redis-server 7")
def test_a_short_real_run_measures_both_topologies() -> None:
    cfg = TopologyConfig(duration=1.0, rounds=1, connections=8, latency_connections=2)
    # Unpinned: the run would otherwise move this test process to the load cores.
    run = measure(cfg, Placement(frozenset(), frozenset()), "test")
    assert sorted(r.topology for r in run.rounds) == ["cluster", "single"]
    for measured in run.rounds:
        for work in (measured.jobs, measured.polls):
            assert work.units > 0
            assert work.redis_cpu_s > 0
            assert work.api_cpu_s > 0
    assert sorted(s.wait_replicas for s in run.latency) == [0, 1]
    assert all(s.requests > 0 and s.p99_ms >= s.p50_ms for s in run.latency)
    # The setting took: the submits of the WAIT build, and only those, were followed by WAITs.
    waits = {s.wait_replicas: s.waits_per_submit for s in run.latency}
    assert waits[0] == 0
    assert 0 < waits[1] <= 1
    assert set(run.idle_redis_ms_per_s) == {"single", "cluster"}
