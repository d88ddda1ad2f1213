"""Redis round trips, counted and timed in the client itself, so that no caller can forget.

One command is one round trip; one pipeline (or MULTI) is one round trip whose operation is
its distinct command names in order, e.g. `HSET+EXPIRE`: the label set stays as small as the
set of code paths, however many commands a batch pipelines.
"""

from collections.abc import Callable
from time import perf_counter
from typing import Any

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.client import Pipeline

from service.metrics import observe_redis_round_trip
from service.storage.autopipeline import AutoPipelinedRedis


class MeasuredPipeline(Pipeline):
    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        if not self.command_stack:
            return await super().execute(raise_on_error)  # nothing is sent
        operation = "+".join(dict.fromkeys(str(args[0]) for args, _ in self.command_stack))
        start = perf_counter()
        try:
            return await super().execute(raise_on_error)
        finally:
            observe_redis_round_trip(operation, perf_counter() - start)


class MeasuredRedis(Redis):
    async def execute_command(self, *args: Any, **options: Any) -> Any:
        start = perf_counter()
        try:
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        finally:
            observe_redis_round_trip(str(args[0]), perf_counter() - start)

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        return MeasuredPipeline(
            self.connection_pool, self.response_callbacks, transaction, shard_hint
        )


class MeasuredAutoPipelinedRedis(MeasuredRedis, AutoPipelinedRedis):  # type: ignore[misc]
    """Each command counts as one round trip for its caller, though the auto-pipeline sends
    the commands of concurrent callers together. The auto-pipeline times its commands itself
    (no second coroutine around each); pipelines are measured as MeasuredRedis measures them."""

    execute_command = AutoPipelinedRedis.execute_command

    @classmethod
    def over(
        cls, pool: ConnectionPool, observe: Callable[[str, float], None] | None = None
    ) -> AutoPipelinedRedis:
        return super().over(pool, observe or observe_redis_round_trip)
