"""The Cluster client's own round trips, counted by the Cluster's nodes (INFO commandstats)."""

import asyncio

import pytest
from redis.cluster import RedisCluster

from service.settings import Settings
from service.storage.connection import close_redis, create_redis


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
