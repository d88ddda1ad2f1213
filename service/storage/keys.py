"""Every Redis key and channel the service reads or writes is named here, and nowhere else.

The job queue is split into STREAM_SHARDS shards. Each shard owns one hash slot of a Redis
Cluster: its stream, its counters, its dead letters, its completion channel, and the hash and
the idempotency record of every job it carries share one `{hash tag}`, so that each step of a
job (submit, batch start, batch finish) stays ONE atomic Lua call on one node. A job's id
carries its shard's slot in its low 14 bits, so a poll finds the job's key from the id alone:
no lookup, one round trip. The shards' slots are spread evenly over the 16384 slots, which is
how `redis-cli --cluster create` spreads them over the primaries.

On a single Redis (or Sentinel) with one shard, the names are untagged (`pred:stream`,
`pred:job:<id>`), as they always were.
"""

import binascii
import functools
import hashlib
import os
import secrets
from uuid import UUID

# The consumer group on each job stream that every worker, in any process or host, joins.
GROUP = "workers"
# The consumer group on each shard's webhook stream that every process's dispatcher joins.
WEBHOOK_GROUP = "webhooks"
SLOTS = 16384
_SLOT_BITS = SLOTS - 1  # 14 bits
# A version 4 UUID's fixed bits (RFC 9562): the version nibble and the variant's two bits.
_VERSION_4_VARIANT = (4 << 76) | (2 << 62)
_NOT_FIXED = ~((0xF << 76) | (0x3 << 62) | _SLOT_BITS) & ((1 << 128) - 1)


def key_slot(text: bytes) -> int:
    """Redis Cluster's slot of a key without a hash tag: CRC16 (XMODEM) modulo 16384."""
    return binascii.crc_hqx(text, 0) & _SLOT_BITS


@functools.cache
def _tags_by_slot() -> tuple[str, ...]:
    """For each slot, the shortest hex string that hashes to it (at most 5 characters).

    Computed once per process (about 0.1 s; Redis publishes no inverse of its hash): a poll of
    any id, even one a client made up, finds a tag for the slot its id names.
    """
    tags: list[str | None] = [None] * SLOTS
    missing = SLOTS
    n = 0
    while missing:
        text = format(n, "x")
        slot = key_slot(text.encode())
        if tags[slot] is None:
            tags[slot] = text
            missing -= 1
        n += 1
    return tuple(tag for tag in tags if tag is not None)


def shard_slot(index: int, shards: int) -> int:
    """The slot of shard `index` of `shards`: the middle of its share of the slot space."""
    return ((2 * index + 1) * SLOTS) // (2 * shards)


class Shard:
    """The keys of one shard of the job queue: all in one hash slot when tagged."""

    def __init__(self, index: int, slot: int, base: str) -> None:
        self.index = index
        self.slot = slot
        self.stream = f"{base}stream"  # the job stream (durable queue)
        self.dead_letters = f"{base}dead"  # jobs that used up MAX_ATTEMPTS
        self.backlog = f"{base}backlog"  # accepted jobs not yet final (admission control)
        self.completed = f"{base}completed"  # jobs made final, ever (completion rate)
        self.done_channel = f"{base}done"  # pub/sub: ids of jobs just made final (or started,
        # for a job an event stream watches)
        # Webhook deliveries: due now (a stream, read by a consumer group), scheduled for a
        # retry (a sorted set by due time, ms), and given up on (a stream).
        self.webhooks = f"{base}webhooks"
        self.webhook_retries = f"{base}webhooks:retry"
        self.webhook_dead = f"{base}webhooks:dead"


class Keys:
    """Names under one prefix, so that several deployments can share a Redis.

    `tagged` (Redis Cluster, or more than one shard) puts every key of a shard in its slot.
    """

    def __init__(self, prefix: str, shards: int = 1, *, tagged: bool | None = None) -> None:
        if shards < 1:
            raise ValueError("shards must be at least 1")
        self.prefix = prefix
        self.tagged = shards > 1 if tagged is None else tagged
        if self.tagged:
            _tags_by_slot()  # at start-up, not in the first request that needs it
        self.shards = [
            Shard(i, slot, self._base(slot))
            for i, slot in ((i, shard_slot(i, shards)) for i in range(shards))
        ]
        self._shard_by_slot = {shard.slot: shard for shard in self.shards}

    @staticmethod
    def _tag(slot: int) -> str:
        return _tags_by_slot()[slot]

    def _base(self, slot: int) -> str:
        return f"{self.prefix}{{{self._tag(slot)}}}" if self.tagged else self.prefix

    # The single shard's names, for a deployment with one shard (and for the tools that
    # read the queue of one): the first shard's.
    @property
    def stream(self) -> str:
        return self.shards[0].stream

    @property
    def backlog(self) -> str:
        return self.shards[0].backlog

    @property
    def completed(self) -> str:
        return self.shards[0].completed

    @property
    def dead_letters(self) -> str:
        return self.shards[0].dead_letters

    @staticmethod
    def new_job_id(shard: Shard) -> UUID:
        """A random (version 4) UUID whose low 14 bits (random in a UUID 4) name its shard's
        slot: 108 random bits are left. Built as uuid4() builds one, from 16 random bytes,
        in one UUID construction: a submit pays for one."""
        random = int.from_bytes(os.urandom(16), "big") & _NOT_FIXED
        return UUID(int=random | _VERSION_4_VARIANT | shard.slot)

    @staticmethod
    def slot_of(job_id: UUID | str) -> int:
        """The slot a job id names (any UUID names one)."""
        value = job_id if isinstance(job_id, UUID) else UUID(job_id)
        return value.int & _SLOT_BITS

    def shard_of(self, job_id: UUID | str) -> Shard | None:
        """The shard a job id belongs to, or None for an id no current shard owns (made up,
        or from before STREAM_SHARDS changed). Untagged, the one shard owns every id."""
        if not self.tagged:
            return self.shards[0]
        return self._shard_by_slot.get(self.slot_of(job_id))

    def shard_for(self, digest: str | None = None) -> Shard:
        """The shard for a new job: a random one, or the one an idempotency key's digest
        names, so that a replay of the key finds its record."""
        if len(self.shards) == 1:
            return self.shards[0]
        if digest is None:
            return self.shards[secrets.randbelow(len(self.shards))]
        return self.shards[int(digest[:8], 16) % len(self.shards)]

    def job(self, prediction_id: UUID | str) -> str:
        # The API passes a parsed UUID, so a hostile path can never shape a key; a consumer
        # passes the id as the submit script wrote it into the stream.
        if not self.tagged:
            return f"{self.prefix}job:{prediction_id}"  # no slot to read from the id
        return f"{self._base(self.slot_of(prediction_id))}job:{prediction_id}"

    @staticmethod
    def idempotency_digest(client_key: str, owner: str | None = None) -> str:
        # Hashed: a client's key may hold any characters and any length up to the limit.
        # Scoped to the API key that sent it, so one client cannot replay another's submit.
        scoped = client_key if owner is None else f"{owner}\0{client_key}"
        return hashlib.sha256(scoped.encode()).hexdigest()

    def idempotency(self, digest: str, shard: Shard) -> str:
        """An idempotency record, in the slot of the shard its digest names."""
        return f"{self._base(shard.slot)}idem:{digest}"

    def rate_limit(self, client: str) -> str:
        # `client` is an API key's id or an address the server saw, never raw request text.
        # One key per script call: any slot will do.
        return f"{self.prefix}rate:{client}"
