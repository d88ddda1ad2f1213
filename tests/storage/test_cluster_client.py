"""The Cluster client's own round trips, counted by the Cluster's nodes (INFO commandstats)."""

import asyncio
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from redis.cluster import RedisCluster

from service.settings import Settings
from service.storage.connection import close_redis, create_redis
from tests.support.http import ASYNC, BODY


@pytest.mark.parametrize("topology", ["cluster"])
def test_a_consumer_s_read_costs_no_command_getkeys(
    topology: str, redis_url: str, redis_client: RedisCluster
) -> None:
    """XREADGROUP's keys sit at a movable place; redis-py asks a node where (COMMAND GETKEYS,
    twice per read); the service's client reads them itself."""
    stream = "pred:{x}stream"

    async def read_twenty() -> None:
        client = create_redis(Settings(redis_url=redis_url))
        try:
            await client.xgroup_create(stream, "workers", id="0", mkstream=True)
            redis_client.config_resetstat(target_nodes=RedisCluster.PRIMARIES)
            for _ in range(20):
                await client.xreadgroup("workers", "c", {stream: ">"}, count=1)
        finally:
            await close_redis(client)

    asyncio.run(read_twenty())
    stats = redis_client.info("commandstats", target_nodes=RedisCluster.PRIMARIES)
    calls = {
        name: sum(node.get(name, {}).get("calls", 0) for node in stats.values())
        for name in ("cmdstat_xreadgroup", "cmdstat_command|getkeys")
    }
    assert calls == {"cmdstat_xreadgroup": 20, "cmdstat_command|getkeys": 0}


@pytest.mark.parametrize("topology", ["cluster"])
def test_a_new_app_s_first_commands_go_to_the_right_nodes(
    topology: str, make_client: Callable[..., TestClient], redis_client: RedisCluster
) -> None:
    """Before it has read the slot map, redis-py routes a keyed command to any node: the
    consumers' first commands drew MOVED, and every fifth MOVED made redis-py close all of
    the client's connections, a request's command in flight among them (a 503). The map is
    read first; the Cluster's nodes count no MOVED (INFO errorstats)."""
    redis_client.config_resetstat(target_nodes=RedisCluster.PRIMARIES)
    for _ in range(5):
        client = make_client(rate_limit_per_s=1000)
        assert client.post("/predict", json={"input": "x"}).status_code == 200
        assert client.post("/predict", json=BODY, headers=ASYNC).status_code == 202
    stats = redis_client.info("errorstats", target_nodes=RedisCluster.PRIMARIES)
    moved = sum(node.get("errorstat_MOVED", {}).get("count", 0) for node in stats.values())
    assert moved == 0
