"""Completion notices for the waiters of one process, over ONE pub/sub subscription (on a
Cluster, one sharded subscription, SSUBSCRIBE, per shard, on the node that owns its slot).

Long-polls and `Prefer: wait` register a waiter per job; the reader task wakes them when the
job's id is published. A waiter re-reads the job hash after a wake-up, so a notice lost while
the subscription was down costs a re-check, never a wrong answer. A job that this process's own
consumer made final wakes its waiters at once with what the finish wrote (`made_final`): no
notice to wait for and nothing to read back, two round trips fewer between a result and its
answer.
"""

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import cast
from uuid import UUID

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.client import PubSub
from redis.exceptions import ConnectionError as RedisConnectionError

from service.jobs.store import FinalState, Finish, Job, JobStore, final_job, final_state
from service.storage.cluster import ServiceRedisCluster
from service.storage.errors import STORAGE_ERRORS

logger = logging.getLogger(__name__)


class Waiter(asyncio.Event):
    """Set when its job may have become final; `final` holds what ending it wrote when this
    process's consumer ended it."""

    final: FinalState | None = None


class Notifier:
    def __init__(self, redis: Redis, channels: Sequence[str], *, sharded: bool = False) -> None:
        self.redis = redis
        self.channels = list(channels)
        self.sharded = sharded
        self._waiters: defaultdict[str, set[Waiter]] = defaultdict(set)
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = asyncio.Event()
        self._up: set[str] = set()  # the subscriptions that are up
        self.subscribed = asyncio.Event()

    @property
    def waiters(self) -> int:
        return sum(len(events) for events in self._waiters.values())

    def start(self) -> None:
        if self.sharded:
            self._tasks = [
                asyncio.create_task(self._run([channel]), name=f"notifier-{channel}")
                for channel in self.channels
            ]
        else:
            self._tasks = [asyncio.create_task(self._run(self.channels), name="notifier")]

    async def close(self) -> None:
        # Stopped by a flag the reader checks between reads of at most a second: a
        # cancellation inside a Redis read can be taken for a timeout and swallowed there.
        self._closing.set()
        for task in self._tasks:
            await task

    @contextlib.contextmanager
    def watch(self, job_id: UUID) -> Iterator[Waiter]:
        """Register before reading the job, so a completion between the read and the wait
        still wakes the waiter."""
        event = self.add_waiter(job_id)
        try:
            yield event
        finally:
            self.remove_waiter(job_id, event)

    def add_waiter(self, job_id: UUID) -> Waiter:
        """`watch` without a context manager, for a caller that registers only sometimes
        (remove_waiter must follow, in a `finally`)."""
        event = Waiter()
        self._waiters[str(job_id)].add(event)
        return event

    def remove_waiter(self, job_id: UUID, event: Waiter) -> None:
        key = str(job_id)
        events = self._waiters.get(key)
        if events is not None:
            events.discard(event)
            if not events:
                del self._waiters[key]

    def _wake(self, job_id: str) -> None:
        for event in self._waiters.get(job_id, ()):
            event.set()

    def made_final(self, finishes: Sequence[Finish], made_final: set[str], at: float) -> bool:
        """A batch this process's consumer just finished, `made_final` the ids it made final
        at `at`: their waiters here are told what was written (nothing is built without one).
        True when a waiter was woken."""
        waiters = self._waiters
        if not waiters:
            return False
        woke = False
        for finish in finishes:
            events = waiters.get(finish.job_id)
            if events and finish.job_id in made_final:
                state = final_state(finish, at)
                if state is None:
                    continue
                for event in events:
                    event.final = state
                    event.set()
                    woke = True
        return woke

    def _wake_all(self) -> None:
        for events in self._waiters.values():
            for event in events:
                event.set()

    async def _pubsub(self, channel: str, refresh: bool) -> PubSub:
        if not self.sharded:
            return self.redis.pubsub()
        # A connection of its own to the primary that owns the channel's slot now.
        cluster = cast(ServiceRedisCluster, self.redis)
        if refresh:
            await cluster.refresh_slots()
        else:
            await cluster.initialize()  # reads the slot map once, if no command has yet
        node = cluster.get_node_from_key(channel)
        if node is None:
            raise RedisConnectionError(f"no node serves the slot of {channel}")
        pool = ConnectionPool(connection_class=node.connection_class, **node.connection_kwargs)
        return PubSub(pool)

    async def _run(self, channels: list[str]) -> None:
        backoff = 0.05
        name = ",".join(channels)
        refresh = False
        while not self._closing.is_set():
            try:
                async with await self._pubsub(channels[0], refresh) as pubsub:
                    if self.sharded:
                        await pubsub.ssubscribe(*channels)
                    else:
                        await pubsub.subscribe(*channels)
                    self._mark(name, up=True)
                    backoff = 0.05
                    # Notices published while unsubscribed are gone: let every waiter re-check.
                    self._wake_all()
                    while not self._closing.is_set():
                        message = await pubsub.get_message(timeout=0.5)
                        if message is None:
                            continue
                        kind = message["type"]
                        if kind in ("message", "smessage"):
                            for job_id in message["data"].decode().split(","):
                                self._wake(job_id)
                        elif kind == "sunsubscribe":
                            # The slot moved to another node (resharding or failover).
                            raise RedisConnectionError("the shard channel moved")
            except STORAGE_ERRORS as exc:
                self._mark(name, up=False)
                refresh = True
                logger.warning("event=notifier_disconnected error=%s", type(exc).__name__)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), backoff)
                backoff = min(backoff * 2, 2.0)
        self._mark(name, up=False)

    def _mark(self, name: str, *, up: bool) -> None:
        if up:
            self._up.add(name)
        else:
            self._up.discard(name)
        if len(self._up) == len(self._tasks):
            self.subscribed.set()
        else:
            self.subscribed.clear()


async def await_final(
    store: JobStore, job_id: UUID, woken: Waiter, timeout_s: float, owner: str | None
) -> Job | None:
    """Read the job, and while it is not final wait for its notice (registered by the
    caller, before the job could finish) and read it again, until `timeout_s` runs out; told
    what ending it wrote, nothing is read again. Another key's job is None at once: waiting
    on it would tell that it exists."""
    deadline = time.monotonic() + timeout_s
    job = await store.get(job_id, owner)
    while job is not None and not job.status.is_final:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            # A timeout scope, not wait_for: wait_for wraps the wait in a task of its own, and
            # its waking takes two more turns of the event loop.
            async with asyncio.timeout(remaining):
                await woken.wait()
        except TimeoutError:
            break
        woken.clear()
        if woken.final is not None:
            return final_job(job, woken.final)
        job = await store.get(job_id, owner)
    return job


async def wait_until_final(
    notifier: Notifier, store: JobStore, job_id: UUID, timeout_s: float, owner: str | None
) -> Job | None:
    with notifier.watch(job_id) as woken:
        return await await_final(store, job_id, woken, timeout_s, owner)
