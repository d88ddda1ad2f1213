"""LocalCluster and LocalSentinel against real redis-server processes, and the CLI commands
that start them."""

import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.cluster import ClusterNode, RedisCluster

from service.server.process import free_port_block
from service.server.redis_topology import LocalCluster, LocalSentinel
from tests.support.paths import ROOT
from tests.support.tools import require_installed


@pytest.fixture(scope="module")
def redis_server() -> Path:
    """redis-server 7 or later (cluster-announce and CLUSTER SHARDS era); a skip on a
    workstation with an older one, a failure in CI."""
    require_installed("redis-cli", "Debian package redis-tools")
    binary = Path(require_installed("redis-server", "Debian package redis-server"))
    version = subprocess.run(
        [binary, "--version"], capture_output=True, text=True, check=True
    ).stdout
    major = int(re.search(r"v=(\d+)\.", version).group(1))  # type: ignore[union-attr]
    if major < 7:
        message = f"redis-server 7 or later needed for the topologies, found: {version}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return binary


@pytest.fixture
def cluster(tmp_path: Path, redis_server: Path) -> Iterator[LocalCluster]:
    with LocalCluster(tmp_path / "cluster", binary=redis_server) as started:
        yield started


def cluster_client(cluster: LocalCluster, password: str | None = None) -> RedisCluster:
    seeds = [
        ClusterNode("127.0.0.1", node.port)  # type: ignore[no-untyped-call]
        for node in cluster.primaries()
    ]
    return RedisCluster(startup_nodes=seeds, password=password, decode_responses=True)


def test_cluster_starts_ok_with_a_replica_per_primary(cluster: LocalCluster) -> None:
    primaries, replicas = cluster.primaries(), cluster.replicas()
    assert len(primaries) == 3
    assert len(replicas) == 3
    for node in cluster.nodes:
        with cluster.client(node) as client:
            assert client.cluster("INFO")["cluster_state"] == "ok"
    for primary in primaries:
        with cluster.client(primary) as client:
            assert client.info("replication")["connected_slaves"] == 1
    ports = ",".join(f"127.0.0.1:{node.port}" for node in cluster.nodes[:3])
    assert cluster.url == f"redis+cluster://{ports}"
    with cluster_client(cluster) as client:
        client.set("greeting", "hello")
        assert client.get("greeting") == "hello"
        slot = client.keyslot("greeting")
    assert cluster.primary_for_slot(slot) in primaries


def test_a_killed_primary_is_replaced_by_its_replica(cluster: LocalCluster) -> None:
    with cluster_client(cluster) as client:
        client.set("survivor", "still here")
        old = cluster.primary_for_slot(client.keyslot("survivor"))
        # WAIT: the replica has the write before the crash.
        with cluster.client(old) as direct:
            assert direct.wait(1, 2000) == 1
        cluster.kill(old)
        new = cluster.wait_for_failover(old, timeout_s=15)
        assert new is not old
        assert new in cluster.primaries()
        assert old not in cluster.primaries()
        assert cluster.primary_for_slot(client.keyslot("survivor")) is new
        assert client.get("survivor") == "still here"
    cluster.restart(old)
    assert old in cluster.replicas()
    assert len(cluster.primaries()) == 3


def test_reshard_moves_slots_while_clients_use_the_cluster(cluster: LocalCluster) -> None:
    source, target = cluster.primaries()[:2]
    before = cluster.slot_count(source), cluster.slot_count(target)
    with cluster_client(cluster) as client:
        keys = {f"key:{i}": str(i) for i in range(300)}
        for key, value in keys.items():
            client.set(key, value)
        mover = threading.Thread(target=cluster.reshard, args=(200, source, target))
        mover.start()
        while mover.is_alive():
            for key, value in list(keys.items())[:50]:
                assert client.get(key) == value
        mover.join()
        assert cluster.slot_count(source) == before[0] - 200
        assert cluster.slot_count(target) == before[1] + 200
        assert all(client.get(key) == value for key, value in keys.items())


def test_a_cluster_restarted_over_its_directory_keeps_its_data(
    tmp_path: Path, redis_server: Path
) -> None:
    with LocalCluster(tmp_path, binary=redis_server) as first, cluster_client(first) as client:
        client.set("kept", "yes")
        ports = [node.port for node in first.nodes]
    with (
        LocalCluster(tmp_path, ports=ports, binary=redis_server) as again,
        cluster_client(again) as client,
    ):
        assert client.get("kept") == "yes"


def test_a_cluster_with_a_password_refuses_strangers(tmp_path: Path, redis_server: Path) -> None:
    with LocalCluster(tmp_path, password="s3cret/pw", binary=redis_server) as cluster:
        assert cluster.url.startswith("redis+cluster://:s3cret%2Fpw@127.0.0.1:")
        with (
            cluster.client(cluster.nodes[0], authenticated=False) as stranger,
            pytest.raises(redis.AuthenticationError),
        ):
            stranger.get("k")
        with cluster_client(cluster, password="s3cret/pw") as client:
            client.set("k", "v")
            assert client.get("k") == "v"


def test_sentinel_promotes_the_replica_when_the_primary_dies(
    tmp_path: Path, redis_server: Path
) -> None:
    with LocalSentinel(tmp_path, password="pw", binary=redis_server) as group:
        ports = ",".join(f"127.0.0.1:{s.port}" for s in group.sentinels)
        assert group.url == f"redis+sentinel://:pw@{ports}/mymaster"
        old = group.primary()
        assert old is group.nodes[0]
        with (
            group.client(old, authenticated=False) as stranger,
            pytest.raises(redis.AuthenticationError),
        ):
            stranger.get("k")
        with group.sentinel_client(group.sentinels[0]) as sentinel:
            assert sentinel.ping()
        group.kill(old)
        new = group.wait_for_failover(old, timeout_s=20)
        assert new is group.nodes[1]
        with group.client(new) as client:
            client.set("after", "failover")
            assert client.get("after") == "failover"


@pytest.mark.parametrize(
    ("command", "variable", "offset", "scheme"),
    [
        ("cluster", "CLUSTER_PORT", 10_000, "redis+cluster"),
        ("sentinel", "SENTINEL_PORT", -20_000, "redis+sentinel"),
    ],
)
def test_the_cli_prints_the_url_and_stops_on_sigterm(
    tmp_path: Path, redis_server: Path, command: str, variable: str, offset: int, scheme: str
) -> None:
    first = free_port_block(6 if command == "cluster" else 3, offsets=(0, offset))
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env |= {variable: str(first), "DATA_DIR": str(tmp_path), "REDIS_SERVER_BIN": str(redis_server)}
    with subprocess.Popen(
        [sys.executable, "-m", "service", command],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            assert line.startswith(f"REDIS_URL={scheme}://127.0.0.1:{first},")
            assert "make run" in process.stdout.readline()
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(30) == 0
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", first), timeout=1).close()
