from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID

from redis.exceptions import RedisError

from service.jobs.store import WebhookTarget

# Work a backend wants run after the 202 is sent, in the same process (the background backend).
AfterResponse = Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Submission:
    job_id: UUID
    # True when an Idempotency-Key named an earlier submit of the same body: nothing new ran.
    replayed: bool = False
    after: AfterResponse | None = None


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why one input of a batch was not accepted, as the status a single submit would have
    answered (429 queue full, 503 not confirmed by the replicas)."""

    code: int
    message: str
    retry_after_s: int


class QueueFullError(Exception):
    def __init__(self, backlog: int, retry_after_s: int) -> None:
        super().__init__(f"the queue holds {backlog} jobs")
        self.backlog = backlog
        self.retry_after_s = retry_after_s


class IdempotencyConflictError(Exception):
    pass


class NotReplicatedError(RedisError):
    """REDIS_WAIT_REPLICAS replicas did not confirm a submit in time: it could be lost in a
    failover, so it is not acknowledged (503, like any Redis that cannot take work)."""


class AsyncBackend(Protocol):
    """How an accepted async prediction gets computed; chosen by ASYNC_BACKEND."""

    async def submit(
        self,
        job_id: UUID,
        payload: Any,
        input_json: bytes,
        *,
        deadline_at: float | None = None,
        idempotency_key: str | None = None,
        owner: str | None = None,
        webhook: WebhookTarget | None = None,
    ) -> Submission:
        """Store the job (one Redis round trip) and hand the work on.

        Raises QueueFullError past MAX_QUEUE, IdempotencyConflictError when the key was used
        with another body."""
        ...

    def start(self) -> None: ...

    async def close(self) -> None: ...
