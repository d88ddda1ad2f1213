"""What a crashed or moving Redis does to a served API under steady traffic: a Cluster primary
killed, slots resharded, a Sentinel primary killed, a Redis not there yet at start-up. Real
redis-servers, real gunicorn, real `kill -9`; each test starts and kills its own topology.

The windows are printed (run with -s) and recorded as properties of the test."""

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2 as httpx
import pytest
import redis

from service.server.process import ServerProcess, free_port, running, wait_until_ready
from service.server.redis_topology import LocalCluster, LocalSentinel, RedisNode
from service.storage.keys import Keys
from tests.support.failover import Fate, Traffic, fate, window
from tests.support.paths import ROOT
from tests.support.served import SERVE, serve
from tests.support.topologies import cluster_client, require_redis_7

pytestmark = pytest.mark.served

ENV = {
    "WEB_CONCURRENCY": "2",
    "MOCK_LATENCY_MS": "5",
    "CLAIM_IDLE_MS": "1000",
    "WORKER_BLOCK_MS": "200",
    "REDIS_SOCKET_TIMEOUT_S": "1",
}
CLUSTER_KEYS = Keys("pred:", shards=3, tagged=True)
SINGLE_KEYS = Keys("pred:")
# The shard whose primary is killed or whose slot is moved.
SHARD = CLUSTER_KEYS.shards[0]
# A node crashed this long after the traffic started, and traffic kept up this long after
# the topology healed.
BEFORE_S = 2.0
AFTER_S = 4.0
# Failures may go on this long after the topology healed: a client's slot map or pooled
# connections catch up within it.
SETTLE_S = 5.0

Report = Callable[[str, object], None]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    require_redis_7()
    with LocalCluster(tmp_path / "cluster") as started:
        yield started


@pytest.fixture
def report(record_property: Report) -> Report:
    def both(name: str, value: object) -> None:
        print(f"\n{name}: {value}")
        record_property(name, str(value))

    return both


def served_env(redis_url: str, wait_replicas: str | None) -> dict[str, str]:
    env = {"REDIS_URL": redis_url, **ENV}
    if wait_replicas is not None:
        env["REDIS_WAIT_REPLICAS"] = wait_replicas
    return env


def assert_only_503s(traffic: Traffic, served: ServerProcess) -> None:
    """Failures are 503s; any other answer fails with the server's tracebacks, its cause."""
    kinds = traffic.kinds_of_failure()
    tracebacks = served.output().split("Traceback")[1:][-3:]
    assert set(kinds) <= {"503"}, (kinds, tracebacks)


@dataclass(frozen=True, slots=True)
class Crash:
    """When a node was killed, and how long after it the topology had failed over and then
    had the node back (as a replica)."""

    at: float
    failed_over_s: float
    healed_s: float


def crash_under(
    traffic: Traffic,
    kill: Callable[[], None],
    failover: Callable[[], object],
    restart: Callable[[], None],
) -> Crash:
    """Traffic for BEFORE_S, then `kill`, `failover` and `restart` (each returns once done),
    then traffic for AFTER_S."""
    time.sleep(BEFORE_S)
    at = time.monotonic()
    kill()
    failover()
    failed_over_s = time.monotonic() - at
    restart()
    healed_s = time.monotonic() - at
    time.sleep(AFTER_S)
    traffic.stop()
    return Crash(at, failed_over_s, healed_s)


def assert_failures_inside(
    traffic: Traffic, served: ServerProcess, crash: Crash, slot: int, report: Report
) -> None:
    """Failures only 503s, only between the crash and SETTLE_S after the node was back, and a
    success on the shard of `slot` after the crash; the figures reported."""
    seen = window(traffic, crash.at, slot)
    report("failed_over_s", f"{crash.failed_over_s:.2f}")
    report("healed_s", f"{crash.healed_s:.2f}")
    report("window", seen)
    report("failures", dict(traffic.kinds_of_failure()))
    assert_only_503s(traffic, served)
    if seen.failures:
        assert seen.first_failure_s is not None, seen
        assert seen.first_failure_s >= 0, seen
        assert seen.last_failure_s is not None, seen
        assert seen.last_failure_s < crash.healed_s + SETTLE_S, seen
    assert seen.first_success_on_shard_s is not None, seen


@pytest.mark.parametrize("wait_replicas", ["1", None], ids=["wait", "no_wait"])
def test_cluster_primary_killed_under_load(
    tmp_path: Path, cluster: LocalCluster, wait_replicas: str | None, report: Report
) -> None:
    env = served_env(cluster.url, wait_replicas)
    with (
        serve(env, tmp_path, unset=("REDIS_WAIT_REPLICAS",)) as served,
        cluster_client(cluster.url) as client,
    ):
        victim = cluster.primary_for_slot(SHARD.slot)
        with Traffic(served.url) as traffic:
            crash = crash_under(
                traffic,
                lambda: cluster.kill(victim),
                lambda: cluster.wait_for_failover(victim),
                lambda: cluster.restart(victim),
            )
        outcome = fate(served.url, client, CLUSTER_KEYS, traffic.accepted)
        report("fate", outcome)
        assert_failures_inside(traffic, served, crash, SHARD.slot, report)
        if wait_replicas is not None:
            assert_nothing_lost(outcome)


def warnings(served: ServerProcess) -> list[str]:
    return [line for line in served.output().splitlines() if "level=WARNING" in line][:20]


def assert_nothing_lost(outcome: Fate) -> None:
    assert outcome.accepted > 0
    assert outcome.lost == [], outcome
    assert outcome.stuck == [], outcome


def test_cluster_resharding_a_shard_slot_under_load(
    tmp_path: Path, cluster: LocalCluster, report: Report
) -> None:
    env = served_env(cluster.url, "1")
    with serve(env, tmp_path) as served, cluster_client(cluster.url) as client:
        source = cluster.primary_for_slot(SHARD.slot)
        target = next(node for node in cluster.primaries() if node is not source)
        with Traffic(served.url) as traffic:
            time.sleep(BEFORE_S)
            started = time.monotonic()
            # redis-cli takes the source's lowest slots first: these include the shard's.
            cluster.reshard(SHARD.slot + 300, source, target)
            report("reshard_s", f"{time.monotonic() - started:.2f}")
            time.sleep(AFTER_S)
        assert cluster.primary_for_slot(SHARD.slot) is target
        outcome = fate(served.url, client, CLUSTER_KEYS, traffic.accepted)
        report("window", window(traffic, started, SHARD.slot))
        report("failures", dict(traffic.kinds_of_failure()))
        report("fate", outcome)
        assert traffic.failures() == [], warnings(served)
        assert_nothing_lost(outcome)


def test_sentinel_primary_killed_under_load(tmp_path: Path, report: Report) -> None:
    require_redis_7()
    with LocalSentinel(tmp_path / "sentinel") as group:
        env = served_env(group.url, "1")
        with serve(env, tmp_path) as served:
            victim = group.primary()
            with Traffic(served.url) as traffic:
                crash = crash_under(
                    traffic,
                    lambda: group.kill(victim),
                    lambda: group.wait_for_failover(victim),
                    lambda: rejoin(group, victim),
                )
            with group.client(group.primary()) as client:
                outcome = fate(served.url, client, SINGLE_KEYS, traffic.accepted)
            report("fate", outcome)
            assert_failures_inside(traffic, served, crash, SINGLE_KEYS.shards[0].slot, report)
            assert_nothing_lost(outcome)


def rejoin(group: LocalSentinel, node: RedisNode, timeout_s: float = 30) -> None:
    """Start a crashed node again and return once the sentinels made it a replica of the new
    primary and it is in sync."""
    node.start(group.binary)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with group.client(group.primary()) as primary:
                replicas = primary.execute_command("ROLE")[2]
            if any(int(port) == node.port for _, port, _ in replicas):
                return
        except redis.RedisError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{node.address} did not rejoin as a replica")


def started_without_redis(
    env: dict[str, str], tmp: Path
) -> "contextlib.AbstractContextManager[ServerProcess]":
    """The service up (its /healthz answers) while its Redis is not."""
    port = free_port()
    full_env = {**os.environ, **ENV, "PORT": str(port), "DATA_DIR": str(tmp / "data"), **env}
    full_env.pop("REDIS_WAIT_REPLICAS", None)
    log = tmp / f"server-{port}.log"
    return running(SERVE, port=port, log=log, env=full_env, cwd=ROOT, ready_path="/healthz")


@pytest.mark.parametrize("topology", ["cluster", "sentinel"])
def test_started_before_its_redis_then_recovers_by_itself(tmp_path: Path, topology: str) -> None:
    require_redis_7()
    later: LocalCluster | LocalSentinel
    if topology == "cluster":
        later = LocalCluster(tmp_path / "cluster")
    else:
        later = LocalSentinel(tmp_path / "sentinel")
    with started_without_redis({"REDIS_URL": later.url}, tmp_path) as served:
        response = httpx.get(f"{served.url}/readyz", timeout=30)
        assert response.status_code == 503
        assert response.json() == {"error": "Storage is unavailable; retry later."}
        assert f"REDIS_URL={later.url}" in served.output()
        with later:
            wait_until_ready(served.url, served.process, served.log, 60)
            submitted = httpx.post(
                f"{served.url}/predict",
                json={"input": "x"},
                headers={"async_mode": "true"},
                timeout=30,
            )
            assert submitted.status_code == 202, submitted.text
            prediction_id = submitted.json()["prediction_id"]
            done = httpx.get(
                f"{served.url}/predict/{prediction_id}", params={"wait": 10}, timeout=30
            )
            assert done.status_code == 200, done.text
            assert done.json()["status"] == "succeeded"
