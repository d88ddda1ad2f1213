import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from service import metrics
from service.jobs.backends.base import (
    IdempotencyConflictError,
    NotReplicatedError,
    QueueFullError,
    Refusal,
    Submission,
)
from service.jobs.store import JobStore, WebhookTarget
from service.storage.errors import STORAGE_ERRORS

# Bounds of the Retry-After a full queue answers with, in seconds.
_MIN_RETRY_AFTER, _MAX_RETRY_AFTER, _UNKNOWN_RATE_RETRY_AFTER = 1, 60, 1
_RATE_WINDOW_S = 30.0


class CompletionRate:
    """Jobs finished per second, from the cluster-wide completed counter that full-queue
    replies carry; sampled only when the queue is full, which is when it is needed."""

    def __init__(self) -> None:
        self._samples: deque[tuple[float, int]] = deque()

    def observe(self, completed: int) -> float | None:
        now = time.monotonic()
        self._samples.append((now, completed))
        while self._samples and now - self._samples[0][0] > _RATE_WINDOW_S:
            self._samples.popleft()
        first_at, first_count = self._samples[0]
        if now - first_at < 0.2:
            return None
        return (completed - first_count) / (now - first_at)


def retry_after_s(backlog: int, max_queue: int, rate: float | None) -> int:
    """Seconds until the backlog should be back under 90% of MAX_QUEUE at the recent rate."""
    if rate is None:
        return _UNKNOWN_RATE_RETRY_AFTER
    if rate <= 0:
        return _MAX_RETRY_AFTER
    excess = backlog - 0.9 * max_queue
    return max(_MIN_RETRY_AFTER, min(_MAX_RETRY_AFTER, math.ceil(excess / rate)))


class StreamBackend:
    """The durable queue: a job is a hash plus an entry in a Redis stream that a consumer
    group works through (service/jobs/consumer.py). This is the submitting side, with its
    admission control, and the sampler of the queue's gauges."""

    def __init__(self, store: JobStore, max_queue: int, sample_every_s: float = 1.0) -> None:
        self.store = store
        self.max_queue = max_queue
        self.sample_every_s = sample_every_s
        self.rate = CompletionRate()
        self._closing = asyncio.Event()
        self._sampler: asyncio.Task[None] | None = None

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
        admission = await self.store.submit(
            job_id,
            input_json,
            enqueue=True,
            max_queue=self.max_queue,
            deadline_at=deadline_at,
            idempotency_key=idempotency_key,
            owner=owner,
            webhook=webhook,
        )
        if admission.verdict == "full":
            rate = self.rate.observe(admission.completed)
            raise QueueFullError(
                admission.backlog, retry_after_s(admission.backlog, self.max_queue, rate)
            )
        if admission.verdict == "conflict":
            raise IdempotencyConflictError
        if admission.verdict == "unreplicated":
            raise NotReplicatedError(f"job {job_id} was not confirmed by the replicas in time")
        if admission.verdict == "duplicate" and admission.existing_id is not None:
            return Submission(admission.existing_id, replayed=True)
        metrics.job_submitted()
        return Submission(job_id)

    async def submit_many(
        self,
        inputs: Sequence[bytes],
        *,
        deadline_at: float | None = None,
        owner: str | None = None,
        webhook: WebhookTarget | None = None,
    ) -> list[tuple[UUID | None, Refusal | None]]:
        """A batch: one submit call per shard, whatever its size; per input, in order, its
        job id, or why it was refused (each alone: a full shard refuses what is past it)."""
        admissions = await self.store.submit_many(
            inputs, max_queue=self.max_queue, deadline_at=deadline_at, owner=owner, webhook=webhook
        )
        outcomes: list[tuple[UUID | None, Refusal | None]] = []
        for job_id, admission in admissions:
            if admission.verdict == "ok":
                metrics.job_submitted()
                outcomes.append((job_id, None))
            elif admission.verdict == "full":
                rate = self.rate.observe(admission.completed)
                wait = retry_after_s(admission.backlog, self.max_queue, rate)
                message = f"The queue is full ({admission.backlog} jobs waiting); retry later."
                outcomes.append((None, Refusal(429, message, wait)))
            else:  # 'unreplicated': no idempotency key, so no duplicate or conflict
                message = "Not confirmed by the replicas in time; retry later."
                outcomes.append((None, Refusal(503, message, _MIN_RETRY_AFTER)))
        return outcomes

    def start(self) -> None:
        if self.sample_every_s > 0:
            self._sampler = asyncio.create_task(self._sample_queue(), name="queue-sampler")

    async def close(self) -> None:
        self._closing.set()
        if self._sampler is not None:
            await self._sampler

    async def _sample_queue(self) -> None:
        """The backlog and the oldest job's age, for the gauges, every QUEUE_SAMPLE_S (one
        round trip; every process samples, and the gauges keep the largest)."""
        while not self._closing.is_set():
            with contextlib.suppress(*STORAGE_ERRORS):
                backlog, oldest_at = await self.store.sample_queue()
                age = max(0.0, time.time() - oldest_at) if oldest_at is not None else 0.0
                metrics.queue_sampled(backlog, age)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self.sample_every_s)
