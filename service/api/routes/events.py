"""GET /predict/{id}/events: a job's states as Server-Sent Events, ending with its answer.

A stream waits on the process's notifier (service/jobs/notifier.py), so a thousand streams cost
no Redis connection each: its waiter is registered before the one round trip that reads the
job and marks it watched (a watched job's start is announced, as its end is), and every wake-up
is followed by a read, so a notice lost while the subscription was down costs a read, never a
missed state. The heartbeats are written by the stream itself when its wait times out, and
each is followed by a read too: a job whose hash expired while it waited ends its stream. A read
that fails (Redis away) leaves the stream waiting, for the next wake-up or heartbeat.
"""

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any
from uuid import UUID

import orjson
from fastapi import APIRouter, Header, Request, Response
from pydantic import NonNegativeInt
from pydantic.json_schema import SkipJsonSchema
from sse_starlette import EventSourceResponse
from starlette.types import Receive, Scope, Send

from service import metrics
from service.api.middleware.api_keys import key_id_of
from service.api.responses import json_response
from service.api.schemas import NOT_FOUND, ErrorBody, NotFound
from service.api.services import Services, ServicesDep
from service.jobs.answers import job_body
from service.jobs.notifier import Waiter
from service.jobs.status import JobStatus
from service.jobs.store import Job, final_job
from service.settings import Settings
from service.storage.errors import STORAGE_ERRORS

# An event's id is its state's place in a job's life: what Last-Event-ID names on a reconnect.
QUEUED_ID, RUNNING_ID, FINAL_ID = 0, 1, 2
_IDS = {JobStatus.QUEUED: QUEUED_ID, JobStatus.RUNNING: RUNNING_ID}
_HEARTBEAT = b":\n\n"


_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["event", "id", "data"],
    "properties": {
        "event": {"enum": [status.value for status in JobStatus]},
        "id": {"enum": [str(QUEUED_ID), str(RUNNING_ID), str(FINAL_ID)]},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "description": "The body a poll answers in that state, as one line of JSON.",
        },
    },
}


def _stream_description(heartbeat_s: float) -> str:
    return f"""A `text/event-stream` of the job's states, each once, in order:

```
event: <status>
id: <n>
data: <the body a poll answers in that state>
```

`queued` (id {QUEUED_ID}) and `running` (id {RUNNING_ID}) carry the poll's 202 body; the final
event (`succeeded`, `failed`, `expired` or `canceled`, id {FINAL_ID}) carries the poll's 200
body, and the stream ends after it. The first event is the job's state at connection (a state
passed faster than it could be read is skipped; the final event always comes). While waiting, a
comment line (`:`) every {heartbeat_s:g} s (SSE_HEARTBEAT_S)."""


def _event(job: Job, event_id: int) -> bytes:
    # The body is one line of JSON: one data line.
    body = orjson.dumps(job_body(job)[1])
    return b"event: %s\nid: %d\ndata: %s\n\n" % (job.status.value.encode(), event_id, body)


async def job_events(
    job: Job,
    woken: Waiter,
    services: Services,
    owner: str | None,
    last_event_id: int,
) -> AsyncIterator[bytes]:
    """The events of `job` after `last_event_id`, as its waiter (registered before `job` was
    read) tells of its changes, until the final one."""
    store, settings = services.store, services.settings
    job_id = UUID(job.id)
    sent = last_event_id
    while True:
        event_id = _IDS.get(job.status, FINAL_ID)
        if event_id > sent:
            sent = event_id
            yield _event(job, event_id)
        if event_id == FINAL_ID:
            return
        try:
            # A timeout scope, not wait_for: no task of its own per wait.
            async with asyncio.timeout(settings.sse_heartbeat_s):
                await woken.wait()
        except TimeoutError:
            yield _HEARTBEAT
        woken.clear()
        if woken.final is not None:
            job = final_job(job, woken.final)
            continue
        try:
            read = await store.get(job_id, owner)
        except STORAGE_ERRORS:
            # Redis is away: the stream waits on (the notifier wakes every waiter once its
            # subscription is back, and each heartbeat tries again) rather than end, which would
            # send every client back at once, to a 503 that an EventSource takes as the end.
            continue
        if read is None:
            return  # it expired while it waited: a reconnect is answered 404
        job = read


class JobEventStream(EventSourceResponse):
    """An event stream that lets go of its job's waiter however it ends, also when the client
    left before the first event was read (then the events' own cleanup never runs)."""

    def __init__(self, events: AsyncIterator[bytes], release: Callable[[], None]):
        # No pings of the library's: the events send their heartbeats while they wait.
        super().__init__(events, ping=0)
        # Cache-Control comes from the security headers (a second copy would repeat it), and
        # the connection's persistence is the server's to say (it closes them when draining).
        self.raw_headers = [
            (name, value)
            for name, value in self.raw_headers
            if name not in (b"cache-control", b"connection")
        ]
        self.release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            with metrics.sse_streaming():
                await super().__call__(scope, receive, send)
        finally:
            self.release()


def events_router(settings: Settings) -> APIRouter:
    router = APIRouter(tags=["predictions"])
    responses: dict[int | str, dict[str, Any]] = {
        200: {
            "description": _stream_description(settings.sse_heartbeat_s),
            # The schema of one event, as an SSE parser reads it (what a tool such as
            # schemathesis checks each event against).
            "content": {"text/event-stream": {"schema": _EVENT_SCHEMA}},
        },
        204: {
            "description": (
                f"Last-Event-ID is {FINAL_ID}: the client has the final event, nothing more "
                "will come (an EventSource stops reconnecting)."
            )
        },
        404: {"model": NotFound, "description": "No prediction has this id (or it expired)."},
        422: {"model": ErrorBody, "description": "The id or Last-Event-ID is invalid."},
        503: {"model": ErrorBody, "description": "Redis is unavailable; retry after Retry-After."},
    }

    @router.get(
        "/predict/{prediction_id}/events",
        operation_id="prediction_events",
        summary="The states of an async prediction, as Server-Sent Events",
        description=(
            "Streams the job's states as they happen and ends with its final answer, the body "
            "a poll gives. Send `Last-Event-ID` (as an EventSource does when it reconnects) "
            "to resume: events with an id up to it are not sent again."
        ),
        response_class=Response,
        responses=responses,
    )
    async def prediction_events(
        request: Request,
        prediction_id: UUID,
        services: ServicesDep,
        last_event_id: Annotated[
            # Sent or not; never null (a header has no null).
            NonNegativeInt | SkipJsonSchema[None],
            Header(
                alias="Last-Event-ID",
                description=f"The id of the last event received ({QUEUED_ID}-{FINAL_ID}).",
            ),
        ] = None,
    ) -> Response:
        owner = key_id_of(request.scope)
        notifier = services.notifier
        woken = notifier.add_waiter(prediction_id)

        def release() -> None:
            notifier.remove_waiter(prediction_id, woken)

        try:
            job = await services.store.watch(prediction_id, owner)
        except BaseException:
            release()
            raise
        if job is None:
            release()
            return json_response(404, {"error": NOT_FOUND})
        if last_event_id is not None and last_event_id >= FINAL_ID:
            release()
            return Response(status_code=204)
        seen = -1 if last_event_id is None else last_event_id
        return JobEventStream(job_events(job, woken, services, owner, seen), release)

    return router
