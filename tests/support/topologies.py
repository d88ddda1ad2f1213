"""Clients of the Redis topologies the tests start, and sums over a sharded job queue."""

import os
import subprocess
from collections import Counter
from typing import Any

import pytest
import redis
from redis.cluster import ClusterNode, RedisCluster

from service.redis_url import parse_redis_url
from service.server.embedded_redis import find_redis_server
from service.server.process import free_port
from service.storage.keys import GROUP, Keys
from tests.support.redis_commands import commands_seen
from tests.support.tools import require_installed


def require_redis_7() -> None:
    """Sharded pub/sub (SSUBSCRIBE) needs Redis 7: the redis-server on PATH, not the bundled
    6.2. Debian's redis-server is 7; .ci/run installs it."""
    require_installed("redis-server", "Debian package redis-server; .ci/run installs it")
    version = subprocess.run(
        [str(find_redis_server()), "--version"], capture_output=True, text=True, check=True
    ).stdout
    if int(version.split("v=")[1].split(".")[0]) < 7:
        message = f"a Redis Cluster test needs redis-server 7, found {version.strip()}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def cluster_client(url: str) -> RedisCluster:
    target = parse_redis_url(url)
    return RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in target.hosts],  # type: ignore[no-untyped-call]
        password=target.password,
    )


def total(client: redis.Redis, keys: Keys, counter: str) -> int:
    """A counter summed over the shards: 'backlog' or 'completed'."""
    return sum(int(client.get(getattr(shard, counter)) or 0) for shard in keys.shards)


def stream_length(client: redis.Redis, keys: Keys) -> int:
    return sum(client.xlen(shard.stream) for shard in keys.shards)


def pending(client: redis.Redis, keys: Keys, stream: str = "stream", group: str = GROUP) -> int:
    """Entries read and not yet acknowledged, over the shards: of the job streams by default,
    or of the shards' `stream` (an attribute of Shard, as 'webhooks') in `group`."""
    count = 0
    for shard in keys.shards:
        name = getattr(shard, stream)
        if client.exists(name) and client.xinfo_groups(name):
            count += client.xpending(name, group)["pending"]
    return count


def dead_letters(client: redis.Redis, keys: Keys, stream: str = "dead_letters") -> list[Any]:
    """The entries of the shards' dead-letter streams: the jobs' by default, or `stream` (an
    attribute of Shard, as 'webhook_dead')."""
    return [entry for shard in keys.shards for entry in client.xrange(getattr(shard, stream)) or []]


def job_keys(client: redis.Redis) -> set[bytes]:
    """Every job hash, under any shard's tag (on a Cluster, from every primary)."""
    pattern = "pred:*job:*"
    if isinstance(client, RedisCluster):
        found = client.keys(pattern, target_nodes=RedisCluster.PRIMARIES)
    else:
        found = client.keys(pattern)
    return {key if isinstance(key, bytes) else key.encode() for key in found}


def servers(client: redis.Redis, *, replicas: bool = False) -> list[redis.Redis]:
    """A client of each server: the one Redis, or each primary of a Cluster (and each replica
    with `replicas`)."""
    if not isinstance(client, RedisCluster):
        return [client]
    nodes = client.get_nodes() if replicas else client.get_primaries()
    return [client.get_redis_connection(node) for node in nodes]


def matching(client: redis.Redis, pattern: str) -> set[bytes]:
    """Every key that matches `pattern`, on every primary."""
    found = (key for server in servers(client) for key in server.keys(pattern))
    return {key if isinstance(key, bytes) else key.encode() for key in found}


def key_count(client: redis.Redis) -> int:
    return sum(server.dbsize() for server in servers(client))


def reset_command_stats(client: redis.Redis) -> None:
    for server in servers(client, replicas=True):
        server.config_resetstat()


# What a Cluster sees besides a request's commands: the slot map and the command table a client
# reads once it starts (and the slot map again after a move), the notifier's sharded
# subscriptions, and the replicas' acknowledgements to their primaries.
_CLUSTER_UPKEEP = (
    "cmdstat_cluster",
    "cmdstat_command",
    "cmdstat_ssubscribe",
    "cmdstat_readonly",
    "cmdstat_replconf",
)


def commands_seen_everywhere(client: redis.Redis) -> dict[str, int]:
    """The commands the primaries ran since `reset_command_stats`, summed (on a single Redis,
    `commands_seen`)."""
    seen: Counter[str] = Counter()
    for server in servers(client):
        seen.update(commands_seen(server))
    return {name: calls for name, calls in seen.items() if not name.startswith(_CLUSTER_UPKEEP)}


def subscribers(client: redis.Redis) -> int:
    """Connections with a pub/sub subscription, plain or sharded, on any server."""
    return sum(
        1
        for server in servers(client, replicas=True)
        for connection in server.client_list()
        if int(connection.get("sub", 0)) + int(connection.get("ssub", 0)) > 0
    )


def unreachable_url(topology: str) -> str:
    """A REDIS_URL of the topology's form where nothing listens."""
    if topology == "cluster":
        return f"redis+cluster://127.0.0.1:{free_port()},127.0.0.1:{free_port()}"
    return f"redis://127.0.0.1:{free_port()}/0"
