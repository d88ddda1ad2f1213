"""Clients of the Redis topologies the tests start, and sums over a sharded job queue."""

import os
import subprocess
from typing import Any

import pytest
import redis
from redis.cluster import ClusterNode, RedisCluster

from service.redis_url import parse_redis_url
from service.server.embedded_redis import find_redis_server
from service.storage.keys import GROUP, Keys
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


def pending(client: redis.Redis, keys: Keys) -> int:
    count = 0
    for shard in keys.shards:
        if client.exists(shard.stream) and client.xinfo_groups(shard.stream):
            count += client.xpending(shard.stream, GROUP)["pending"]
    return count


def dead_letters(client: redis.Redis, keys: Keys) -> list[Any]:
    return [entry for shard in keys.shards for entry in client.xrange(shard.dead_letters) or []]


def job_keys(client: redis.Redis) -> set[bytes]:
    """Every job hash, under any shard's tag (on a Cluster, from every primary)."""
    pattern = "pred:*job:*"
    if isinstance(client, RedisCluster):
        found = client.keys(pattern, target_nodes=RedisCluster.PRIMARIES)
    else:
        found = client.keys(pattern)
    return {key if isinstance(key, bytes) else key.encode() for key in found}
