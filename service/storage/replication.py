"""A write that waits for replicas: WAIT right after it, on the same connection.

Redis replicates asynchronously, so a write that a primary acknowledged can die with it.
`WAIT numreplicas timeout` answers how many replicas have every write of ITS connection so
far; to cover a write, it must follow it on that connection. Behind the auto-pipeline many
callers share one connection, so each write of an event-loop iteration is queued with one WAIT
after it (callers of the same iteration on the same connection share the WAIT's answer: it
covers all their writes).
"""

from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.typing import EncodableT

from service.storage.autopipeline import AutoPipeline, AutoPipelinedRedis
from service.storage.cluster import AutoPipelinedRedisCluster


async def call_then_wait(
    redis: Redis, command: Sequence[EncodableT], slot: int, replicas: int, timeout_ms: int
) -> tuple[Any, int]:
    """The command's raw reply, and how many replicas confirmed it within `timeout_ms`."""
    pipeline: AutoPipeline | None = None
    if isinstance(redis, AutoPipelinedRedis):
        pipeline = redis.autopipeline
    elif isinstance(redis, AutoPipelinedRedisCluster):
        if redis._initialize:  # the slot map is stale (a node failed): read it first
            await redis.initialize()
        pipeline = redis.pipeline_for_slot(slot)
    if pipeline is not None:
        reply = pipeline.submit(command)
        confirmed = pipeline.submit_wait(replicas, timeout_ms)
        return await reply, int(await confirmed)
    # A client without the auto-pipeline: a pipeline holds one connection for both.
    async with redis.pipeline(transaction=False) as pipe:
        pipe.execute_command(*command)
        pipe.execute_command("WAIT", replicas, timeout_ms)
        reply, confirmed = await pipe.execute(raise_on_error=True)
    return reply, int(confirmed)
