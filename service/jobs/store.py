"""The job hash: one Redis hash per prediction, keyed by its id, expiring after RESULT_TTL_S,
and the atomic steps of a job's life (submit, start, finish), one round trip each."""

import asyncio
import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, cast
from uuid import UUID

import orjson
from redis.asyncio import Redis
from redis.exceptions import NoScriptError
from redis.typing import FieldT

from service.jobs.status import JobStatus
from service.storage import scripts
from service.storage.keys import GROUP, Keys, Shard
from service.storage.replication import call_then_wait

Outcome = Literal["succeeded", "failed", "expired", "retry", "dead", "gone", "canceled"]


# The most deliveries a shard's webhook stream keeps (MAXLEN ~): the scripts that queue them
# and the dispatcher's promoter, which moves due retries back, trim to it.
WEBHOOK_STREAM_MAXLEN = 100_000

_JobFields = dict[bytes, bytes]
# A stored status, by its bytes: JobStatus(...) is a Python call per job read.
_STATUSES = {status.value.encode(): status for status in JobStatus}


@dataclass(frozen=True, slots=True)
class Job:
    id: str  # the UUID's canonical text
    status: JobStatus
    input: Any
    result: str | None
    error: str | None
    created_at: float
    finished_at: float | None
    # The id of the API key that submitted it (service/api/middleware/api_keys.py); None with
    # auth off.
    owner: str | None = None

    @classmethod
    def from_hash(cls, job_id: str, fields: dict[bytes, bytes]) -> "Job":
        finished = fields.get(b"finished_at")
        result = fields.get(b"result")
        error = fields.get(b"error")
        owner = fields.get(b"owner")
        return cls(
            id=job_id,
            status=_STATUSES[fields[b"status"]],
            # Stored as JSON and only ever sent back as JSON: embedded as it is, not re-parsed.
            input=orjson.Fragment(fields[b"input"]),
            result=result.decode() if result is not None else None,
            error=error.decode() if error is not None else None,
            created_at=float(fields[b"created_at"]),
            finished_at=float(finished) if finished is not None else None,
            owner=owner.decode() if owner is not None else None,
        )


@dataclass(frozen=True, slots=True)
class FinalState:
    """What finishing a job wrote into its hash: all of the job that changes when it ends."""

    status: JobStatus
    result: str | None
    error: str | None
    finished_at: float


# What finish_batch.lua stores for each final outcome ('dead' is 'failed' with a dead letter).
FINAL_STATUS = {
    "succeeded": JobStatus.SUCCEEDED,
    "failed": JobStatus.FAILED,
    "dead": JobStatus.FAILED,
    "expired": JobStatus.EXPIRED,
}


def final_state(finish: "Finish", finished_at: float) -> FinalState | None:
    """What finish_batch.lua wrote into the hash of a job it made final; None for an outcome
    that leaves no final job ('retry', 'gone')."""
    status = FINAL_STATUS.get(finish.outcome)
    if status is None:
        return None
    if status is JobStatus.SUCCEEDED:
        return FinalState(status, finish.value, None, finished_at)
    return FinalState(status, None, finish.value, finished_at)


def final_job(job: Job, state: FinalState) -> Job:
    """A job as read before it ended, with what ending it wrote (the rest never changes)."""
    return replace(
        job,
        status=state.status,
        result=state.result,
        error=state.error,
        finished_at=state.finished_at,
    )


@dataclass(frozen=True, slots=True)
class Admission:
    """What the submit script decided."""

    verdict: Literal["ok", "full", "duplicate", "conflict", "unreplicated"]
    backlog: int = 0
    completed: int = 0
    existing_id: UUID | None = None


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """Where a job's events are POSTed, and which: 'start' and/or 'completed'."""

    url: str
    events: tuple[str, ...] = ("completed",)


@dataclass(frozen=True, slots=True)
class Cancellation:
    """What cancel.lua decided: 'missing' (no such job for this key), 'final' (it had ended
    and is left as it was), or 'canceled' (`before` is 'canceled' when it already was)."""

    verdict: Literal["missing", "final", "canceled"]
    before: JobStatus | None = None
    created_at: float | None = None


@dataclass(frozen=True, slots=True)
class Finish:
    """How one delivery of a job ends."""

    entry_id: bytes
    job_id: str  # as the stream carries it
    outcome: Outcome
    value: str


def _admission(reply: list[Any], unreplicated: bool) -> Admission:
    verdict = reply[0].decode()
    if unreplicated and verdict == "ok":
        return Admission("unreplicated", backlog=int(reply[1]))
    if verdict in ("duplicate", "conflict"):
        return Admission(verdict, existing_id=UUID(reply[1].decode()))
    if verdict == "full":
        return Admission("full", backlog=int(reply[1]), completed=int(reply[2]))
    return Admission("ok", backlog=int(reply[1]))


def _visible(job_id: str, fields: _JobFields, owner: str | None) -> Job | None:
    """The job a hash holds, for `owner` only: None for no job, or another key's."""
    if b"status" not in fields:
        return None
    job = Job.from_hash(job_id, fields)
    return job if job.owner == owner else None


def body_digest(input_json: bytes) -> str:
    return hashlib.sha256(input_json).hexdigest()


class JobStore:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        ttl_s: int,
        *,
        stream_maxlen: int = 100_000,
        dead_letter_maxlen: int = 10_000,
        wait_replicas: int = 0,
        wait_timeout_ms: int = 500,
        sharded_pubsub: bool = False,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.ttl_s = ttl_s
        self.stream_maxlen = stream_maxlen
        self.dead_letter_maxlen = dead_letter_maxlen
        self.wait_replicas = wait_replicas
        self.wait_timeout_ms = wait_timeout_ms
        # SPUBLISH on a Cluster: a notice goes to the subscribers of the channel's shard, not
        # to every node of the cluster as PUBLISH does.
        self.publish_command = "SPUBLISH" if sharded_pubsub else "PUBLISH"
        self._submit = redis.register_script(scripts.SUBMIT)
        self._mark_running = redis.register_script(scripts.MARK_RUNNING)
        self._finish_batch = redis.register_script(scripts.FINISH_BATCH)
        self._sample_queue = redis.register_script(scripts.SAMPLE_QUEUE)
        self._cancel = redis.register_script(scripts.CANCEL)
        self._finish_job = redis.register_script(scripts.FINISH_JOB)
        self._watch_job = redis.register_script(scripts.WATCH_JOB)

    def new_job_id(self, idempotency_key: str | None = None, owner: str | None = None) -> UUID:
        """An id for a new job, naming the shard it goes to: the one an Idempotency-Key
        names, so that a replay finds its record, or else any. With one shard there is
        nothing to choose, and the key is not hashed here (submit hashes it for its record)."""
        digest = (
            self.keys.idempotency_digest(idempotency_key, owner)
            if idempotency_key is not None and len(self.keys.shards) > 1
            else None
        )
        return self.keys.new_job_id(self.keys.shard_for(digest))

    async def submit(
        self,
        job_id: UUID,
        input_json: bytes,
        *,
        enqueue: bool,
        max_queue: int = 0,
        deadline_at: float | None = None,
        idempotency_key: str | None = None,
        owner: str | None = None,
        webhook: WebhookTarget | None = None,
    ) -> Admission:
        """One round trip: admission, the job hash (with its owner) and its TTL, the stream
        entry, the idempotency record, atomically, all in the slot of the job's shard (named
        by its id, from `new_job_id`). With REDIS_WAIT_REPLICAS, a WAIT follows on the same
        connection, in the same write: 'unreplicated' when the replicas did not confirm."""
        text = str(job_id)
        shard = self.keys.shard_of(job_id)
        if shard is None:
            raise ValueError(f"job id {text} names no shard: make it with new_job_id")
        job_key = self.keys.job(text)
        if idempotency_key:
            digest = self.keys.idempotency_digest(idempotency_key, owner)
            record, body = self.keys.idempotency(digest, shard), body_digest(input_json)
        else:
            record, body = job_key, ""
        command = (
            "EVALSHA",
            self._submit.sha,
            5,
            shard.stream,
            shard.backlog,
            shard.completed,
            job_key,
            record,
            *self._submit_args(enqueue, max_queue, deadline_at, owner, webhook),
            text,
            input_json,
            body,
        )
        [admission] = await self._run_submit(shard, command)
        return admission

    async def submit_many(
        self,
        inputs: Sequence[bytes],
        *,
        max_queue: int = 0,
        deadline_at: float | None = None,
        owner: str | None = None,
        webhook: WebhookTarget | None = None,
    ) -> list[tuple[UUID, Admission]]:
        """A batch of jobs, spread over the shards: ONE submit call per shard, all shards at
        once, whatever the batch's size. Each job is admitted or refused alone; the answers
        come back in the order of `inputs`."""
        shards = self.keys.shards
        ids = [self.keys.new_job_id(shards[n % len(shards)]) for n in range(len(inputs))]
        header = self._submit_args(True, max_queue, deadline_at, owner, webhook)
        # Job n goes to shard n % len(shards): each shard's jobs, for the shards that get any.
        members = [
            (shard, range(index, len(inputs), len(shards)))
            for index, shard in enumerate(shards[: len(inputs)])
        ]
        calls = []
        for shard, jobs in members:
            keys: list[FieldT] = [shard.stream, shard.backlog, shard.completed]
            args: list[FieldT] = list(header)
            for n in jobs:
                text = str(ids[n])
                job_key = self.keys.job(text)
                keys += (job_key, job_key)
                args += (text, inputs[n], "")
            command = ("EVALSHA", self._submit.sha, len(keys), *keys, *args)
            calls.append(self._run_submit(shard, command))
        admissions: dict[int, Admission] = {}
        for (_, jobs), answers in zip(members, await asyncio.gather(*calls), strict=True):
            admissions.update(zip(jobs, answers, strict=True))
        return [(job_id, admissions[n]) for n, job_id in enumerate(ids)]

    def _submit_args(
        self,
        enqueue: bool,
        max_queue: int,
        deadline_at: float | None,
        owner: str | None,
        webhook: WebhookTarget | None,
    ) -> tuple[FieldT, ...]:
        """The submit script's ARGV before its jobs' (lua/submit.lua)."""
        return (
            repr(time.time()),
            self.ttl_s,
            max_queue,
            self.stream_maxlen,
            repr(deadline_at) if deadline_at is not None else "",
            "1" if enqueue else "0",
            owner or "",
            webhook.url if webhook else "",
            ",".join(webhook.events) if webhook else "",
        )

    async def _run_submit(self, shard: Shard, command: tuple[Any, ...]) -> list[Admission]:
        """One submit call in `shard`'s slot; with REDIS_WAIT_REPLICAS, a WAIT after it."""
        try:
            if self.wait_replicas:
                replies, replicas = await call_then_wait(
                    self.redis, command, shard.slot, self.wait_replicas, self.wait_timeout_ms
                )
                unreplicated = replicas < self.wait_replicas
            else:
                # EVALSHA itself: redis-py's Script call is one more coroutine (and an import)
                # per submit; it is what loads the script into a Redis that lacks it.
                replies = await self.redis.execute_command(*command)  # type: ignore[no-untyped-call]
                unreplicated = False
        except NoScriptError:
            await self.redis.script_load(scripts.SUBMIT)
            return await self._run_submit(shard, command)
        return [_admission(reply, unreplicated) for reply in replies]

    async def get(self, job_id: UUID, owner: str | None = None) -> Job | None:
        """One round trip (HGETALL). A job is only shown to the key that submitted it: to any
        other it does not exist, so its id gives nothing away (OWASP API1)."""
        text = str(job_id)
        fields = cast(_JobFields, await self.redis.hgetall(self.keys.job(text)))
        return _visible(text, fields, owner)

    async def mark_running(
        self, shard: Shard, job_ids: Sequence[str]
    ) -> list[tuple[int, float | None]]:
        """One round trip for a batch of one shard (their hashes share its slot): per job
        (attempts including this one, created_at); attempts is -1 for a job already final,
        -2 for one whose hash is gone and -3 for one canceled. It queues the 'start' webhooks
        and announces the start of jobs an event stream watches."""
        reply = await self._mark_running(
            keys=[shard.webhooks, *(self.keys.job(job_id) for job_id in job_ids)],
            args=[
                repr(time.time()),
                self.publish_command,
                shard.done_channel,
                WEBHOOK_STREAM_MAXLEN,
                *job_ids,
            ],
        )
        return [(int(attempts), float(created) if created else None) for attempts, created in reply]

    async def finish_batch(
        self, shard: Shard, finishes: Sequence[Finish], now: float
    ) -> tuple[set[str], int]:
        """One round trip for a batch of one shard: results, XACK, dead letters, counters,
        webhook deliveries and the completion notice, finished at `now` (epoch s). Returns the
        ids of the jobs this call made final, and how many canceled jobs it acknowledged (their
        results dropped)."""
        args: list[FieldT] = [
            GROUP,
            self.ttl_s,
            repr(now),
            shard.done_channel,
            self.stream_maxlen,
            self.dead_letter_maxlen,
            self.publish_command,
            WEBHOOK_STREAM_MAXLEN,
        ]
        for finish in finishes:
            args += [finish.entry_id, finish.job_id, finish.outcome, finish.value]
        keys = [shard.stream, shard.backlog, shard.completed, shard.dead_letters, shard.webhooks]
        keys += [self.keys.job(finish.job_id) for finish in finishes]
        made_final, canceled = await self._finish_batch(keys=keys, args=args)
        return {job_id.decode() for job_id in made_final}, len(canceled)

    async def cancel(self, job_id: UUID, owner: str | None) -> Cancellation:
        """One round trip: a queued or running job becomes canceled (its 'completed' webhook
        queued, its waiters told); a queued job no consumer has read leaves the stream, so
        nothing runs it. A final job is left as it was; another key's job is 'missing'."""
        text = str(job_id)
        shard = self.keys.shard_of(job_id)
        if shard is None:
            return Cancellation("missing")
        job_key = self.keys.job(text)
        reply = await self._cancel(
            keys=[job_key, shard.stream, shard.backlog, shard.completed, shard.webhooks],
            args=[
                GROUP,
                repr(time.time()),
                self.ttl_s,
                owner or "",
                self.publish_command,
                shard.done_channel,
                text,
                WEBHOOK_STREAM_MAXLEN,
            ],
        )
        verdict = reply[0].decode()
        if verdict == "missing":
            return Cancellation("missing")
        return Cancellation(verdict, _STATUSES[reply[1]], float(reply[2]))

    async def watch(self, job_id: UUID, owner: str | None) -> Job | None:
        """One round trip: the job, now marked as watched by an event stream (its start is
        then announced on the done channel); None for no job, or another key's."""
        text = str(job_id)
        if self.keys.shard_of(job_id) is None:
            return None
        flat = await self._watch_job(keys=[self.keys.job(text)])
        return _visible(text, dict(zip(flat[::2], flat[1::2], strict=True)), owner)

    async def sample_queue(self) -> tuple[int, float | None]:
        """One round trip per shard, concurrently: the backlog of all shards, and the enqueue
        time (epoch s) of the oldest job not yet final, from its stream id, or None when there
        is none."""
        replies = await asyncio.gather(
            *(
                self._sample_queue(keys=[shard.stream, shard.backlog], args=[GROUP])
                for shard in self.keys.shards
            )
        )
        backlog = sum(int(reply[0]) for reply in replies)
        stamps = [int(entry.split(b"-")[0]) for reply in replies for entry in reply[1:] if entry]
        return backlog, min(stamps) / 1000 if stamps else None

    async def finish(
        self,
        job_id: UUID,
        status: JobStatus,
        *,
        result: str | None = None,
        error: str | None = None,
    ) -> None:
        """A job that never went through the stream (the background backend): one round trip;
        the TTL restarts so a result is kept RESULT_TTL_S after it exists. A job canceled
        meanwhile stays canceled."""
        key = self.keys.job(job_id)
        shard = self.keys.shard_of(job_id) or self.keys.shards[0]
        field, value = ("result", result) if result is not None else ("error", error or "")
        await self._finish_job(
            keys=[key, shard.completed],
            args=[
                status.value,
                field,
                value,
                repr(time.time()),
                self.ttl_s,
                self.publish_command,
                shard.done_channel,
                str(job_id),
            ],
        )
