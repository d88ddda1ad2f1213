"""Stream consumers: they run inside the API processes (WORKER_CONCURRENCY each) or standalone,
on any host that reaches Redis: `python -m service worker` (`make worker`).

Each consumer reads batches from the consumer group of one shard's job stream (every shard has
WORKER_CONCURRENCY consumers in each process, so none starves), marks them running, calls the
model once per batch, and finishes the batch in one round trip. Entries a dead consumer left
pending are reclaimed with XAUTOCLAIM after CLAIM_IDLE_MS; each delivery is counted, and a job
that used up MAX_ATTEMPTS is failed into the dead-letter stream.
"""

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import orjson
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from service import metrics
from service.jobs.store import FINAL_STATUS, Finish, JobStore, Outcome
from service.models.base import Model
from service.settings import Settings
from service.storage import scripts
from service.storage.errors import STORAGE_ERRORS, TRANSIENT_REPLIES
from service.storage.keys import GROUP, Shard

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ConsumerConfig:
    max_batch_size: int
    max_batch_wait_ms: float
    claim_idle_ms: int
    max_attempts: int
    block_ms: int
    # Model errors are logged with their message and traceback, which may quote the input.
    log_inputs: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> "ConsumerConfig":
        # A blocking read must return well within the socket timeout.
        block_ms = max(1, min(settings.worker_block_ms, int(settings.redis_socket_timeout_s * 500)))
        return cls(
            max_batch_size=settings.max_batch_size,
            max_batch_wait_ms=settings.max_batch_wait_ms,
            claim_idle_ms=settings.claim_idle_ms,
            max_attempts=settings.max_attempts,
            block_ms=block_ms,
            log_inputs=settings.log_inputs,
        )


@dataclass(frozen=True, slots=True)
class Delivery:
    entry_id: bytes
    job_id: str  # as the submit script wrote it: a UUID's text
    input: Any
    deadline_at: float | None
    # Read as new (not reclaimed) and never run before (not a retry): it has no attempts yet.
    first: bool = False


@dataclass
class ConsumerStats:
    """Counts a test or an operator can read; never timings."""

    batches: int = 0
    jobs: int = 0
    largest_batch: int = 0
    reclaimed: int = 0


class ArrivalRate:
    """Jobs this consumer read per second, over the last second of its reads."""

    def __init__(self, window_s: float = 1.0) -> None:
        self.window_s = window_s
        self._reads: deque[tuple[float, int]] = deque()
        self._jobs = 0

    def observe(self, now: float, jobs: int) -> float:
        """Record a read of `jobs` at `now` (monotonic seconds); the rate, this read included."""
        reads = self._reads
        reads.append((now, jobs))
        self._jobs += jobs
        while now - reads[0][0] > self.window_s:
            self._jobs -= reads.popleft()[1]
        return self._jobs / self.window_s


def consumer_name(index: int) -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{index}"


def _parse(entry_id: bytes, fields: dict[bytes, bytes] | None, new: bool) -> Delivery | None:
    # An entry trimmed from the stream while pending comes back without fields.
    if not fields or b"id" not in fields:
        return None
    deadline = fields.get(b"deadline_at") or b""
    return Delivery(
        entry_id=entry_id,
        job_id=fields[b"id"].decode(),
        input=orjson.loads(fields[b"input"]),
        deadline_at=float(deadline) if deadline else None,
        first=new and b"retry" not in fields,
    )


def _past(deadline_at: float | None, now: float) -> bool:
    return deadline_at is not None and deadline_at < now


def _record_finished(
    finishes: Sequence[Finish], made_final: set[str], created: dict[str, float]
) -> None:
    finished: list[tuple[str, float]] = []
    for finish in finishes:
        job_id = finish.job_id
        status = FINAL_STATUS.get(finish.outcome)
        if status is None or job_id not in made_final or job_id not in created:
            continue
        finished.append((status, created[job_id]))
        if finish.outcome == "dead":
            metrics.job_dead_lettered()
    metrics.jobs_finished(finished)


class StreamConsumer:
    def __init__(
        self,
        redis: Redis,
        store: JobStore,
        shard: Shard,
        model: Model,
        config: ConsumerConfig,
        name: str,
        on_final: Callable[[Sequence[Finish], set[str], float], bool] | None = None,
    ) -> None:
        self.redis = redis
        self.store = store
        self.shard = shard  # the one stream this consumer reads
        self.model = model
        self.config = config
        self.name = name
        # Told what each batch made final: this process's waiters on those jobs answer from it,
        # with no read back from Redis (service/jobs/notifier.py).
        self.on_final = on_final
        self.stats = ConsumerStats()
        self._stopping = asyncio.Event()
        self._group_ready = False
        self._next_claim_at = 0.0
        self._arrivals = ArrivalRate()
        self._forget_idle = redis.register_script(scripts.FORGET_IDLE_CONSUMERS)

    def stop(self) -> None:
        """Stop reading; the batch in hand is finished first."""
        self._stopping.set()

    async def run(self) -> None:
        backoff = 0.05
        while not self._stopping.is_set():
            try:
                await self._ensure_group()
                batch = await self._next_batch()
                if batch:
                    await self._process(batch)
                backoff = 0.05
            except TRANSIENT_REPLIES as exc:  # a Cluster failing over or still forming
                backoff = await self._wait_out(exc, backoff)
            except ResponseError as exc:
                if "NOGROUP" in str(exc):  # Redis lost the group (restarted without data)
                    self._group_ready = False
                    continue
                logger.exception("event=worker_error consumer=%s", self.name)
                await self._pause(backoff)
            except STORAGE_ERRORS as exc:
                backoff = await self._wait_out(exc, backoff)

    async def _wait_out(self, exc: Exception, backoff: float) -> float:
        """An outage: say so, wait, and wait longer next time (up to 2 s)."""
        logger.warning(
            "event=worker_redis_error consumer=%s error=%s", self.name, type(exc).__name__
        )
        await self._pause(backoff)
        return min(backoff * 2, 2.0)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            await self.redis.xgroup_create(self.shard.stream, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    async def _next_batch(self) -> list[Delivery | tuple[bytes, None]]:
        now = time.monotonic()
        if now >= self._next_claim_at:
            self._next_claim_at = now + self.config.claim_idle_ms / 2000
            claimed = await self._reclaim()
            if claimed:
                return claimed
        entries = await self._read(self.config.max_batch_size, self.config.block_ms)
        if not entries:
            return entries
        now = time.monotonic()
        wait_s = self.config.max_batch_wait_ms / 1000
        # Wait for a batch to fill only while at least one more job is expected within the
        # wait: at a light load, waiting would only delay every job by the whole wait.
        if self._arrivals.observe(now, len(entries)) * wait_s >= 1:
            deadline = now + wait_s
            while len(entries) < self.config.max_batch_size:
                remaining_ms = int((deadline - time.monotonic()) * 1000)
                if remaining_ms < 1:
                    break
                more = await self._read(self.config.max_batch_size - len(entries), remaining_ms)
                if not more:
                    break
                self._arrivals.observe(time.monotonic(), len(more))
                entries += more
        return entries

    async def _read(self, count: int, block_ms: int) -> list[Delivery | tuple[bytes, None]]:
        reply = await self.redis.xreadgroup(
            GROUP, self.name, {self.shard.stream: ">"}, count=count, block=block_ms
        )
        if not reply:
            return []
        [[_, entries]] = cast(
            list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes] | None]]]], reply
        )
        return [_parse(entry_id, fields, True) or (entry_id, None) for entry_id, fields in entries]

    async def _reclaim(self) -> list[Delivery | tuple[bytes, None]]:
        reply = await self.redis.xautoclaim(
            self.shard.stream,
            GROUP,
            self.name,
            min_idle_time=self.config.claim_idle_ms,
            start_id="0-0",
            count=self.config.max_batch_size,
        )
        await self._forget_dead_consumers()
        entries = cast(list[tuple[bytes, dict[bytes, bytes] | None]], reply[1])
        claimed = [
            _parse(entry_id, fields, False) or (entry_id, None) for entry_id, fields in entries
        ]
        if claimed:
            self.stats.reclaimed += len(claimed)
            metrics.jobs_reclaimed(len(claimed))
            logger.info("event=reclaimed consumer=%s count=%d", self.name, len(claimed))
        return claimed

    async def _forget_dead_consumers(self) -> None:
        """Drop the consumers of exited processes once nothing is pending on them, so that
        the group does not grow with every restart."""
        threshold_ms = max(60_000, 4 * self.config.claim_idle_ms)
        forgotten = await self._forget_idle(
            keys=[self.shard.stream], args=[GROUP, threshold_ms, self.name]
        )
        if forgotten:
            logger.info("event=consumers_forgotten consumer=%s count=%d", self.name, forgotten)

    async def _process(self, batch: Sequence[Delivery | tuple[bytes, None]]) -> None:
        deliveries = [item for item in batch if isinstance(item, Delivery)]
        trimmed = [item[0] for item in batch if not isinstance(item, Delivery)]
        if trimmed:
            # Nothing to run or report for an entry without fields: acknowledge it away.
            await self.redis.xack(self.shard.stream, GROUP, *trimmed)
        if not deliveries:
            return
        now = time.time()
        # A first delivery has no attempts to count yet, so nothing mark_running answers can
        # keep it from running unless its job ended or vanished meanwhile: the model starts
        # at once, in this turn of the event loop, while the marking goes out, and the result
        # of a job that must not run is dropped. A reclaimed or retried delivery runs only
        # after its attempts were counted.
        marking = asyncio.ensure_future(
            self.store.mark_running(self.shard, [d.job_id for d in deliveries])
        )
        ahead = [(d, 1) for d in deliveries if d.first and not _past(d.deadline_at, now)]
        try:
            ran = (
                {finish.entry_id: finish for finish in await self._run_model(ahead)}
                if ahead
                else {}
            )
            started = await marking
        except BaseException:
            marking.cancel()
            await asyncio.gather(marking, return_exceptions=True)
            raise
        finishes: list[Finish] = []
        runnable: list[tuple[Delivery, int]] = []
        created: dict[str, float] = {}
        started_at: list[float] = []
        for delivery, (attempts, created_at) in zip(deliveries, started, strict=True):
            if created_at is not None:
                created[delivery.job_id] = created_at
            if attempts == -1:
                continue  # another consumer finished it; its XACK already removed the entry
            if attempts == -2:
                finishes.append(Finish(delivery.entry_id, delivery.job_id, "gone", ""))
            elif attempts == -3:
                # Canceled while queued: acknowledged, never run.
                finishes.append(Finish(delivery.entry_id, delivery.job_id, "canceled", ""))
            elif attempts > self.config.max_attempts:
                reason = f"gave up after {self.config.max_attempts} attempts"
                finishes.append(Finish(delivery.entry_id, delivery.job_id, "dead", reason))
            elif _past(delivery.deadline_at, now):
                finishes.append(
                    Finish(delivery.entry_id, delivery.job_id, "expired", "deadline passed")
                )
            else:
                runnable.append((delivery, attempts))
                if created_at is not None:
                    started_at.append(created_at)
        metrics.jobs_started(started_at, now)
        if ran:
            finishes += [ran[d.entry_id] for d, _ in runnable if d.entry_id in ran]
            runnable = [(d, attempts) for d, attempts in runnable if d.entry_id not in ran]
        if runnable:
            finishes += await self._run_model(runnable)
        if finishes:
            finished_at = time.time()
            made_final, canceled = await self.store.finish_batch(self.shard, finishes, finished_at)
            if (
                self.on_final is not None
                and made_final
                and self.on_final(finishes, made_final, finished_at)
            ):
                # The waiters it woke answer first, before this consumer's bookkeeping
                # and its next read.
                await asyncio.sleep(0)
            _record_finished(finishes, made_final, created)
            expected = sum(finish.outcome != "retry" for finish in finishes)
            if len(made_final) + canceled < expected:
                # Another consumer reclaimed these while this one stalled, and finished first:
                # their results stand, these are dropped.
                logger.info(
                    "event=duplicate_completion consumer=%s ignored=%d",
                    self.name,
                    expected - len(made_final) - canceled,
                )

    async def _run_model(self, runnable: list[tuple[Delivery, int]]) -> list[Finish]:
        self.stats.batches += 1
        self.stats.jobs += len(runnable)
        self.stats.largest_batch = max(self.stats.largest_batch, len(runnable))
        inputs = [delivery.input for delivery, _ in runnable]
        async with self._keep_claimed([delivery.entry_id for delivery, _ in runnable]):
            try:
                results = await self.model.predict_batch(inputs)
            except Exception as exc:
                if len(runnable) == 1:
                    return [self._failure(*runnable[0], exc)]
                # One bad input must not fail its batch mates: run them one by one.
                return [await self._run_one(delivery, attempts) for delivery, attempts in runnable]
        return [
            Finish(delivery.entry_id, delivery.job_id, "succeeded", result)
            for (delivery, _), result in zip(runnable, results, strict=True)
        ]

    async def _run_one(self, delivery: Delivery, attempts: int) -> Finish:
        try:
            [result] = await self.model.predict_batch([delivery.input])
        except Exception as exc:
            return self._failure(delivery, attempts, exc)
        return Finish(delivery.entry_id, delivery.job_id, "succeeded", result)

    def _failure(self, delivery: Delivery, attempts: int, exc: Exception) -> Finish:
        logger.warning(
            "event=model_error prediction_id=%s attempt=%d error=%s",
            delivery.job_id,
            attempts,
            type(exc).__name__,
            exc_info=exc if self.config.log_inputs else None,
        )
        outcome: Outcome = "dead" if attempts >= self.config.max_attempts else "retry"
        return Finish(delivery.entry_id, delivery.job_id, outcome, type(exc).__name__)

    @contextlib.asynccontextmanager
    async def _keep_claimed(self, entry_ids: list[bytes]) -> AsyncIterator[None]:
        """While a batch runs longer than a third of CLAIM_IDLE_MS, reset the entries' idle
        time (XCLAIM JUSTID, which does not count a delivery), so that live consumers do not
        reclaim work that is still in progress."""

        ids: list[int | bytes | str | memoryview[int]] = list(entry_ids)
        interval_s = self.config.claim_idle_ms / 3000
        done = asyncio.Event()

        async def heartbeat() -> None:
            while not done.is_set():
                with contextlib.suppress(*STORAGE_ERRORS):
                    await self.redis.xclaim(
                        self.shard.stream, GROUP, self.name, 0, ids, justid=True
                    )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(done.wait(), interval_s)
                    return

        # Most batches end long before the first heartbeat is due: a timer, cancelled at the
        # end, costs them nothing of the event loop; the task starts only for a long batch.
        tasks: list[asyncio.Task[None]] = []
        loop = asyncio.get_running_loop()
        timer = loop.call_later(interval_s, lambda: tasks.append(loop.create_task(heartbeat())))
        try:
            yield
        finally:
            timer.cancel()
            # Stopped by an event, not cancelled: a cancellation that lands inside a Redis
            # call can be taken for a timeout there and swallowed, and the loop would never end.
            done.set()
            for task in tasks:
                await task


class ConsumerPool:
    """WORKER_CONCURRENCY consumers per shard in one process, started and stopped together."""

    def __init__(self, consumers: list[StreamConsumer]) -> None:
        self.consumers = consumers
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(c.run(), name=c.name) for c in self.consumers]

    async def stop(self, timeout_s: float) -> None:
        """Stop reading, let in-flight batches finish within `timeout_s`; what is left stays
        pending in the stream for other consumers to reclaim."""
        for consumer in self.consumers:
            consumer.stop()
        if not self._tasks:
            return
        _, pending = await asyncio.wait(self._tasks, timeout=timeout_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
