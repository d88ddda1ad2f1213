"""A write that waits for replicas: WAIT right after it, on the same connection.

Redis replicates asynchronously, so a write that a primary acknowledged can die with it.
`WAIT numreplicas timeout` answers how many replicas have every write of ITS connection so
far; to cover a write, it must follow it on that connection. Behind the auto-pipeline many
callers share one connection, so each write of an event-loop iteration is queued with one WAIT
after it (callers of the same iteration on the same connection share the WAIT's answer: it
covers all their writes).

On a Cluster, a write whose node answers that it did not run it (the slot moved or is moving,
the cluster is failing over) goes again, with its WAIT, to the node that serves the slot then;
a write whose connection was lost is never sent again (it may have run): the caller fails.
"""

import asyncio
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ClusterDownError, MovedError, SlotNotCoveredError
from redis.typing import EncodableT

from service.storage.autopipeline import AutoPipeline, AutoPipelinedRedis
from service.storage.cluster import NOT_RUN, AutoPipelinedRedisCluster

# A slot's keys move in well under a second; a failover takes the node timeout. Past these
# tries, the caller's answer is a 503.
_CLUSTER_TRIES = 8
_MAX_PAUSE_S = 0.5


async def call_then_wait(
    redis: Redis, command: Sequence[EncodableT], slot: int, replicas: int, timeout_ms: int
) -> tuple[Any, int]:
    """The command's raw reply, and how many replicas confirmed it within `timeout_ms`."""
    if isinstance(redis, AutoPipelinedRedisCluster):
        return await _on_cluster(redis, command, slot, replicas, timeout_ms)
    if isinstance(redis, AutoPipelinedRedis):
        return await _on(redis.autopipeline, command, replicas, timeout_ms)
    # A client without the auto-pipeline: a pipeline holds one connection for both.
    async with redis.pipeline(transaction=False) as pipe:
        pipe.execute_command(*command)
        pipe.execute_command("WAIT", replicas, timeout_ms)
        reply, confirmed = await pipe.execute(raise_on_error=True)
    return reply, int(confirmed)


async def _on(
    pipeline: AutoPipeline, command: Sequence[EncodableT], replicas: int, timeout_ms: int
) -> tuple[Any, int]:
    reply = pipeline.submit(command)
    confirmed = pipeline.submit_wait(replicas, timeout_ms)
    try:
        return await reply, int(await confirmed)
    finally:
        # The WAIT is answered even when the command was refused; its answer is no one's then.
        await asyncio.gather(confirmed, return_exceptions=True)


async def _on_cluster(
    redis: AutoPipelinedRedisCluster,
    command: Sequence[EncodableT],
    slot: int,
    replicas: int,
    timeout_ms: int,
) -> tuple[Any, int]:
    pause_s = 0.01
    tries = 1
    while True:
        if redis._initialize:  # the slot map is stale (a node failed): read it first
            await redis.initialize()
        try:
            return await _on(redis.pipeline_for_slot(slot), command, replicas, timeout_ms)
        except NOT_RUN as refused:
            if tries == _CLUSTER_TRIES:
                raise
            tries += 1
            if isinstance(refused, MovedError):
                await redis.nodes_manager.move_slot(refused)
            elif isinstance(refused, ClusterDownError | SlotNotCoveredError):
                redis._initialize = True
        await asyncio.sleep(pause_s)
        pause_s = min(pause_s * 2, _MAX_PAUSE_S)
