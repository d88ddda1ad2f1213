"""Steady traffic against a served API while its Redis fails over or moves slots, and what it
saw: every answer with its time, the failure window around a crash, the accepted jobs that
never finished."""

import asyncio
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx2 as httpx
import redis

from service.storage.keys import Keys
from tests.support.load import final_bodies

FINAL = frozenset({"succeeded", "failed"})


@dataclass(frozen=True, slots=True)
class Answer:
    """One request: when it was answered, what it was, and the slot of the job it named."""

    at: float
    action: str  # "submit" or "poll"
    status: int | None  # None: no HTTP answer (a transport error, named in `error`)
    error: str | None
    slot: int | None

    @property
    def failed(self) -> bool:
        return self.status not in (200, 202)


@dataclass
class Traffic:
    """`submitters` clients submitting and `pollers` clients polling accepted jobs, each
    pausing `pause_s` between requests, in a thread of their own until `stop`."""

    url: str
    submitters: int = 4
    pollers: int = 4
    pause_s: float = 0.01
    accepted: list[str] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> "Traffic":
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(30)

    def _record(self, action: str, status: int | None, error: str | None, job: str | None) -> None:
        slot = Keys.slot_of(job) if job is not None else None
        self.answers.append(Answer(time.monotonic(), action, status, error, slot))

    async def _submit(self, client: httpx.AsyncClient) -> None:
        while not self._stopping.is_set():
            try:
                response = await client.post(
                    "/predict", json={"input": "load"}, headers={"async_mode": "true"}
                )
            except httpx.TransportError as exc:
                self._record("submit", None, type(exc).__name__, None)
            else:
                job = response.json()["prediction_id"] if response.status_code == 202 else None
                if job is not None:
                    self.accepted.append(job)
                self._record("submit", response.status_code, None, job)
            await asyncio.sleep(self.pause_s)

    async def _poll(self, client: httpx.AsyncClient) -> None:
        while not self._stopping.is_set():
            if self.accepted:
                job = random.choice(self.accepted)
                try:
                    response = await client.get(f"/predict/{job}")
                except httpx.TransportError as exc:
                    self._record("poll", None, type(exc).__name__, job)
                else:
                    self._record("poll", response.status_code, None, job)
            await asyncio.sleep(self.pause_s)

    async def _run(self) -> None:
        limits = httpx.Limits(max_connections=self.submitters + self.pollers)
        async with httpx.AsyncClient(base_url=self.url, timeout=10, limits=limits) as client:
            await asyncio.gather(
                *(self._submit(client) for _ in range(self.submitters)),
                *(self._poll(client) for _ in range(self.pollers)),
            )

    def failures(self) -> list[Answer]:
        return [answer for answer in self.answers if answer.failed]

    def kinds_of_failure(self) -> Counter[str]:
        """Failures by HTTP status, or by transport error."""
        return Counter(
            str(a.status) if a.status is not None else str(a.error) for a in self.failures()
        )


@dataclass(frozen=True, slots=True)
class Window:
    """A crash as the clients saw it, in seconds after the crash (None: never): the first and
    the last failure of any request, and the first success on the crashed shard after a
    failure there."""

    requests: int
    failures: int
    first_failure_s: float | None
    last_failure_s: float | None
    first_success_on_shard_s: float | None

    def __str__(self) -> str:
        def seconds(value: float | None) -> str:
            return "-" if value is None else f"{value:.2f}s"

        return (
            f"requests={self.requests} failures={self.failures} "
            f"first_failure={seconds(self.first_failure_s)} "
            f"last_failure={seconds(self.last_failure_s)} "
            f"first_success_on_shard={seconds(self.first_success_on_shard_s)}"
        )


def window(traffic: Traffic, crash_at: float, slot: int) -> Window:
    """The failures after a crash at `crash_at` (time.monotonic), and the first request that
    succeeded on the shard of `slot` after one there had failed."""
    failures = [answer.at - crash_at for answer in traffic.failures()]
    on_shard = [a for a in traffic.answers if a.slot == slot and a.at > crash_at]
    first_failure = min((a.at for a in on_shard if a.failed), default=crash_at)
    recovered = [a.at - crash_at for a in on_shard if not a.failed and a.at > first_failure]
    return Window(
        requests=len(traffic.answers),
        failures=len(failures),
        first_failure_s=min(failures, default=None),
        last_failure_s=max(failures, default=None),
        first_success_on_shard_s=min(recovered, default=None),
    )


@dataclass(frozen=True, slots=True)
class Fate:
    """What became of the accepted jobs: `lost` ones have no job hash, `stuck` ones are not
    final after the wait."""

    accepted: int
    finished: int
    lost: list[str]
    stuck: list[str]

    def __str__(self) -> str:
        return (
            f"accepted={self.accepted} finished={self.finished} "
            f"lost={len(self.lost)} stuck={len(self.stuck)}"
        )


def fate(url: str, client: redis.Redis, keys: Keys, ids: list[str], timeout_s: float = 30) -> Fate:
    """Follow every accepted job until it is final or `timeout_s` has passed, then read the
    hashes of the others from Redis."""
    final = final_bodies(url, ids, timeout_s)
    unfinished = [job for job in ids if job not in final]
    lost: list[str] = []
    stuck: list[str] = []
    for job in unfinished:
        status = client.hget(keys.job(job), "status")
        (lost if status is None else stuck).append(job)
    return Fate(len(ids), len(final), lost, stuck)
