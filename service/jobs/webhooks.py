"""Webhook delivery: durable, at-least-once, signed as the Standard Webhooks specification says.

A delivery is queued in Redis by the very Lua call that starts, finishes or cancels its job
(service/storage/lua/), in the job's shard: a stream per shard, read by the consumer group
`webhooks` that the dispatcher of every process (API or standalone worker) joins. A delivery is
an entry in that group until it is settled, in one Lua call (webhook_settle.lua): delivered,
or given up on (410, a refused URL, a 4xx, its last attempt; then a dead letter), or moved to a
sorted set until its retry is due (a timeout, a connection error, 429 or 5xx), with exponential
backoff and full jitter. A process killed mid-delivery leaves its entries pending; another
takes them over after WEBHOOK_CLAIM_IDLE_MS (XAUTOCLAIM), so an event can arrive twice, always
with the same `webhook-id`: a receiver drops what it has seen.

Each attempt checks the URL again (service/jobs/webhook_urls.py) and connects to the address
it checked, naming the host in `Host` and TLS's SNI. Redirects are not followed.
"""

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

import httpx2
import orjson
from redis.asyncio import Redis
from redis.exceptions import ResponseError
from standardwebhooks import Webhook

from service import metrics
from service.jobs.answers import job_body
from service.jobs.store import WEBHOOK_STREAM_MAXLEN, Job
from service.jobs.webhook_urls import WebhookURLError, check_webhook_url
from service.settings import Settings
from service.storage import scripts
from service.storage.errors import STORAGE_ERRORS, TRANSIENT_REPLIES
from service.storage.keys import WEBHOOK_GROUP, Shard

logger = logging.getLogger(__name__)

USER_AGENT = "prediction-service-webhooks/1"
_DEAD_LETTER_MAXLEN = 10_000
_RETRYABLE = frozenset({408, 429})


def event_body(fields: dict[bytes, bytes], now: datetime) -> bytes:
    """The JSON a delivery POSTs: the event's type and time, and as `data` the job's state as
    a poll would have answered it when the event happened (the entry holds the job's fields
    as its hash did then)."""
    job = Job.from_hash(fields[b"job"].decode(), fields)
    _, data = job_body(job)
    event = fields[b"event"].decode()
    stamp = now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return orjson.dumps({"type": f"prediction.{event}", "timestamp": stamp, "data": data})


def retry_delay_s(attempt: int, base_s: float, cap_s: float) -> float:
    """The wait before attempt `attempt + 1` (attempt 0 is the first): "full jitter", uniform
    up to base * 2**attempt, capped."""
    # Not a secret: the standard generator will do.
    return random.uniform(0, min(cap_s, base_s * 2**attempt))  # noqa: S311


class WebhookDispatcher:
    """One per process: a reader per shard, at most WEBHOOK_CONCURRENCY deliveries at once."""

    def __init__(
        self, redis: Redis, shards: Sequence[Shard], settings: Settings, name: str
    ) -> None:
        if settings.webhook_secret is None:
            raise ValueError("webhooks need WEBHOOK_SECRET")
        self.redis = redis
        self.shards = list(shards)
        self.settings = settings
        self.name = name
        self.signer = Webhook(settings.webhook_secret)
        self.concurrency = max(1, settings.webhook_concurrency)
        # A slot per delivery in flight, taken before the read that may fill it, so that the
        # readers of several shards together never start more than WEBHOOK_CONCURRENCY; each
        # reader takes at most its share at once and waits its turn (the semaphore is FIFO).
        self._slots = asyncio.Semaphore(self.concurrency)
        self._share = -(-self.concurrency // len(self.shards))
        # A blocking read must return well within the socket timeout.
        # As the job consumers' (WORKER_BLOCK_MS, the most a stop waits for it), at most 0.5 s.
        block_ms = min(settings.worker_block_ms, 500, int(settings.redis_socket_timeout_s * 500))
        self._block_ms = max(1, block_ms)
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._deliveries: set[asyncio.Task[None]] = set()
        # Set when this process schedules a retry on a shard (its promoter looks again), and
        # on stop.
        self._scheduled = {shard.index: asyncio.Event() for shard in self.shards}
        self._settle = redis.register_script(scripts.WEBHOOK_SETTLE)
        self._due = redis.register_script(scripts.WEBHOOK_DUE)
        self.client = httpx2.AsyncClient(
            timeout=settings.webhook_timeout_s,
            follow_redirects=False,
            trust_env=False,  # no proxy from the environment: the checked address is called
            headers={"user-agent": USER_AGENT},
        )

    def start(self) -> None:
        for shard in self.shards:
            self._tasks.append(asyncio.create_task(self._read(shard), name=f"webhooks-{shard}"))
            self._tasks.append(asyncio.create_task(self._promote(shard)))

    def stop(self) -> None:
        """Stop reading and promoting now (close() then waits for what is in flight)."""
        self._stopping.set()
        for scheduled in self._scheduled.values():
            scheduled.set()  # wakes the promoters, which then see the stop

    async def close(self) -> None:
        """Stop reading; deliveries in flight get GRACEFUL_TIMEOUT_S to end, and what is left
        stays pending for another process."""
        self.stop()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._deliveries:
            _, pending = await asyncio.wait(
                self._deliveries, timeout=self.settings.graceful_timeout_s
            )
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self.client.aclose()

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _read(self, shard: Shard) -> None:
        backoff = 0.05
        group_ready = False
        next_claim = 0.0
        while not self._stopping.is_set():
            room = await self._take()
            if not room:
                continue
            started = 0
            failed = False
            try:
                if not group_ready:
                    with contextlib.suppress(ResponseError):  # BUSYGROUP: it exists
                        await self.redis.xgroup_create(
                            shard.webhooks, WEBHOOK_GROUP, id="0", mkstream=True
                        )
                    group_ready = True
                claim = time.monotonic() >= next_claim
                if claim:
                    next_claim = time.monotonic() + self.settings.webhook_claim_idle_ms / 2000
                for entry_id, fields in await self._fetch(shard, room, claim=claim):
                    if not fields:  # trimmed while pending: nothing left to send
                        await self.redis.xack(shard.webhooks, WEBHOOK_GROUP, entry_id)
                        continue
                    started += 1
                    task = asyncio.create_task(self._deliver(shard, entry_id, fields))
                    self._deliveries.add(task)
                    task.add_done_callback(self._done)
                backoff = 0.05
            except ResponseError as exc:
                if "NOGROUP" in str(exc):
                    group_ready = False
                    continue
                logger.exception("event=webhook_reader_error shard=%d", shard.index)
                failed = True
            except (*TRANSIENT_REPLIES, *STORAGE_ERRORS) as exc:
                logger.warning("event=webhook_redis_error error=%s", type(exc).__name__)
                failed = True
            finally:
                self._release(room - started)
            if failed:
                await self._pause(backoff)
                backoff = min(backoff * 2, 2.0)

    async def _take(self) -> int:
        """Slots for the next read: one, waited for (at most a second), and what more of its
        share is free now."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._slots.acquire(), 1.0)
            room = 1
            while room < self._share and not self._slots.locked():
                await self._slots.acquire()  # free: returns at once
                room += 1
            return room
        return 0

    async def _fetch(
        self, shard: Shard, count: int, *, claim: bool
    ) -> list[tuple[bytes, dict[bytes, bytes] | None]]:
        """Up to `count` entries: first deliveries a dead process left pending (taken over
        when `claim`), else new ones."""
        if claim:
            reply = await self.redis.xautoclaim(
                shard.webhooks,
                WEBHOOK_GROUP,
                self.name,
                self.settings.webhook_claim_idle_ms,
                count=count,
            )
            claimed = cast(list[tuple[bytes, dict[bytes, bytes] | None]], reply[1])
            if claimed:
                return claimed
        read = await self.redis.xreadgroup(
            WEBHOOK_GROUP, self.name, {shard.webhooks: ">"}, count=count, block=self._block_ms
        )
        if not read:
            return []
        [[_, entries]] = cast(list[tuple[bytes, list[tuple[bytes, Any]]]], read)
        return entries

    def _release(self, slots: int) -> None:
        for _ in range(slots):
            self._slots.release()

    def _done(self, task: asyncio.Task[None]) -> None:
        self._deliveries.discard(task)
        self._release(1)
        if not task.cancelled() and task.exception() is not None:
            logger.error("event=webhook_delivery_error", exc_info=task.exception())

    async def _promote(self, shard: Shard) -> None:
        """Moves due retries back into the stream, waking when the next one is due, when this
        process schedules one, and at least every second (for those of other processes)."""
        scheduled = self._scheduled[shard.index]
        while not self._stopping.is_set():
            wait_s = 1.0
            scheduled.clear()
            try:
                now_ms = int(time.time() * 1000)
                _, next_due = await self._due(
                    keys=[shard.webhooks, shard.webhook_retries],
                    args=[now_ms, 100, WEBHOOK_STREAM_MAXLEN],
                )
                if next_due:
                    wait_s = min(1.0, max(0.0, (float(next_due) - now_ms) / 1000))
            except (*TRANSIENT_REPLIES, *STORAGE_ERRORS) as exc:
                logger.warning("event=webhook_redis_error error=%s", type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait_s):
                    await scheduled.wait()

    async def _deliver(self, shard: Shard, entry_id: bytes, fields: dict[bytes, bytes]) -> None:
        now = datetime.now(UTC)
        started = time.perf_counter()
        try:
            attempt = int(fields.get(b"attempt", b"0"))
            webhook_id = fields[b"id"].decode()
            url = fields[b"url"].decode()
            body = event_body(fields, now)
        except (KeyError, ValueError) as exc:
            # Sent again it would fail again: kept for a person to look at.
            await self._give_up(shard, entry_id, fields, 1, f"malformed entry ({exc!r})", None)
            return
        try:
            target = await check_webhook_url(url, self.settings)
        except WebhookURLError as exc:
            await self._give_up(shard, entry_id, fields, attempt + 1, f"URL refused: {exc}", None)
            return
        headers = {
            "content-type": "application/json",
            "host": target.host_header,
            "webhook-id": webhook_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": self.signer.sign(webhook_id, now, body),
        }
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        try:
            response = await self.client.post(
                target.pinned_url, content=body, headers=headers, extensions=extensions
            )
            status: int | None = response.status_code
            reason = f"answered {status}"
        except httpx2.TimeoutException:
            status, reason = None, "timed out"
        except httpx2.TransportError as exc:
            status, reason = None, f"could not connect ({type(exc).__name__})"
        seconds = time.perf_counter() - started
        if status is not None and 200 <= status < 300:
            await self._settle_entry(shard, entry_id, "done", 0, [])
            metrics.webhook_attempted("delivered", seconds)
        elif status == 410:
            # The receiver says the endpoint is gone: never sent again.
            await self._settle_entry(shard, entry_id, "done", 0, [])
            metrics.webhook_attempted("gone", seconds)
            logger.info("event=webhook_gone webhook_id=%s", webhook_id)
        elif status is None or status >= 500 or status in _RETRYABLE:
            if attempt + 1 >= self.settings.webhook_max_attempts:
                await self._give_up(shard, entry_id, fields, attempt + 1, reason, seconds)
                return
            delay = retry_delay_s(
                attempt, self.settings.webhook_backoff_s, self.settings.webhook_backoff_max_s
            )
            retry = {**fields, b"attempt": str(attempt + 1).encode()}
            due_ms = int((time.time() + delay) * 1000)
            await self._settle_entry(shard, entry_id, "retry", due_ms, _flat(retry))
            self._scheduled[shard.index].set()
            metrics.webhook_attempted("retried", seconds)
        else:
            # A redirect (never followed) or a 4xx the receiver will answer again.
            await self._give_up(shard, entry_id, fields, attempt + 1, reason, seconds)

    async def _give_up(
        self,
        shard: Shard,
        entry_id: bytes,
        fields: dict[bytes, bytes],
        attempts: int,
        reason: str,
        seconds: float | None,
    ) -> None:
        dead = {**fields, b"attempts": str(attempts).encode(), b"reason": reason.encode()}
        await self._settle_entry(shard, entry_id, "dead", 0, _flat(dead))
        metrics.webhook_attempted("dead", seconds)
        logger.warning(
            "event=webhook_dead_lettered webhook_id=%s attempts=%d reason=%s",
            fields.get(b"id", b"").decode(),
            attempts,
            reason,
        )

    async def _settle_entry(
        self, shard: Shard, entry_id: bytes, action: str, due_ms: int, fields: list[str]
    ) -> None:
        """One Lua call; retried through an outage, so that a delivery's outcome is not lost
        (left pending, it would be sent again after WEBHOOK_CLAIM_IDLE_MS)."""
        backoff = 0.05
        while True:
            try:
                await self._settle(
                    keys=[shard.webhooks, shard.webhook_retries, shard.webhook_dead],
                    args=[
                        WEBHOOK_GROUP,
                        entry_id,
                        action,
                        due_ms,
                        orjson.dumps(fields),
                        _DEAD_LETTER_MAXLEN,
                    ],
                )
                return
            except (*TRANSIENT_REPLIES, *STORAGE_ERRORS):
                if self._stopping.is_set():
                    return  # left pending: another process sends it again
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)


def _flat(fields: dict[bytes, bytes]) -> list[str]:
    """Stream fields as the settle script's JSON array: name, value, name, value..."""
    return [text for pair in fields.items() for text in (pair[0].decode(), pair[1].decode())]
