"""The job hash: one Redis hash per prediction, keyed by its id, expiring after RESULT_TTL_S."""

import time
from dataclasses import dataclass
from typing import Any, cast
from uuid import UUID

import orjson
from redis.asyncio import Redis
from redis.typing import FieldT

from service.keys import Keys
from service.status import JobStatus


@dataclass(frozen=True, slots=True)
class Job:
    id: UUID
    status: JobStatus
    input: Any
    result: str | None
    error: str | None
    created_at: float
    finished_at: float | None

    @classmethod
    def from_hash(cls, job_id: UUID, fields: dict[bytes, bytes]) -> "Job":
        finished = fields.get(b"finished_at")
        result = fields.get(b"result")
        error = fields.get(b"error")
        return cls(
            id=job_id,
            status=JobStatus(fields[b"status"].decode()),
            input=orjson.loads(fields[b"input"]),
            result=result.decode() if result is not None else None,
            error=error.decode() if error is not None else None,
            created_at=float(fields[b"created_at"]),
            finished_at=float(finished) if finished is not None else None,
        )


class JobStore:
    def __init__(self, redis: Redis, keys: Keys, ttl_s: int) -> None:
        self.redis = redis
        self.keys = keys
        self.ttl_s = ttl_s

    async def create(self, job_id: UUID, input_json: bytes) -> None:
        """One round trip; MULTI so that a hash never exists without its TTL."""
        key = self.keys.job(job_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                key,
                mapping={
                    "status": JobStatus.QUEUED.value,
                    "input": input_json,
                    "created_at": repr(time.time()),
                },
            )
            pipe.expire(key, self.ttl_s)
            await pipe.execute()

    async def get(self, job_id: UUID) -> Job | None:
        """One round trip (HGETALL)."""
        fields = cast(dict[bytes, bytes], await self.redis.hgetall(self.keys.job(job_id)))
        if not fields or b"status" not in fields:
            return None
        return Job.from_hash(job_id, fields)

    async def finish(
        self,
        job_id: UUID,
        status: JobStatus,
        *,
        result: str | None = None,
        error: str | None = None,
    ) -> None:
        """One round trip; the TTL restarts so a result is kept RESULT_TTL_S after it exists."""
        key = self.keys.job(job_id)
        fields: dict[FieldT, FieldT] = {"status": status.value, "finished_at": repr(time.time())}
        if result is not None:
            fields["result"] = result
        if error is not None:
            fields["error"] = error
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=fields)
            pipe.expire(key, self.ttl_s)
            await pipe.execute()
