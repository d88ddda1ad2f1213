"""What POST /predict and GET /predict/{id} do, apart from how the request reached them: the
FastAPI routes (which also make the OpenAPI document) and the fast paths both call these."""

import re
import time
from typing import Any
from uuid import UUID

import orjson
from pydantic import BaseModel, ValidationError
from starlette.background import BackgroundTask

from service import metrics
from service.api.headers import (
    HeaderValues,
    InvalidAsyncModeError,
    async_mode_requested,
    first,
    preferred_wait_s,
    respond_async_preferred,
)
from service.api.responses import (
    JSONBytesResponse,
    json_response,
    pydantic_errors,
    validation_error_body,
)
from service.api.schemas import EXPIRED, FAILED, IDEMPOTENCY_CONFLICT, NOT_FOUND, STILL_PROCESSING
from service.api.services import Services
from service.jobs.backends.base import IdempotencyConflictError, QueueFullError
from service.jobs.notifier import await_final, wait_until_final
from service.jobs.status import JobStatus
from service.jobs.store import Job
from service.settings import Settings

_QUEUED = JobStatus.QUEUED.value
# Printable ASCII, no space at either end (HTTP strips those): what a header carries intact.
IDEMPOTENCY_KEY = re.compile(r"[!-~](?:[ -~]*[!-~])?")


def job_response(
    job: Job, settings: Settings, headers: dict[str, str] | None = None
) -> JSONBytesResponse:
    """The bodies of the API's first version for a stored job, with its id and state."""
    common = {"prediction_id": job.id, "status": job.status.value}
    if job.status is JobStatus.SUCCEEDED:
        body = {
            "input": job.input,
            "result": job.result,
            **common,
            "created_at": job.created_at,
            "finished_at": job.finished_at,
        }
        return json_response(200, body, headers)
    if not job.status.is_final:
        retry = {"Retry-After": str(settings.retry_after_s)}
        return json_response(
            202, {"error": STILL_PROCESSING, **common}, {**retry, **(headers or {})}
        )
    message = FAILED if job.status is JobStatus.FAILED else EXPIRED
    return json_response(200, {"error": message, **common, "reason": job.error}, headers)


class PredictionHandlers:
    def __init__(self, request_model: type[BaseModel], settings: Settings) -> None:
        self.request_model = request_model
        self.settings = settings
        self._validate_json = request_model.__pydantic_validator__.validate_json

    async def predict(
        self,
        services: Services,
        headers: HeaderValues,
        body: bytes,
        root_path: str,
        owner: str | None,
    ) -> JSONBytesResponse:
        """`headers` are the request's, picked once (pick_headers); `owner` is the id of the API
        key that asks (None without keys): its job is its."""
        settings = self.settings
        # `Prefer: respond-async` asks for the async answer too; an async-mode header, when
        # there is one, decides.
        prefers_async = "prefer" in headers and respond_async_preferred(headers)
        try:
            # Most requests carry neither spelling: two lookups, no call.
            if "async_mode" in headers or "async-mode" in headers:
                asynchronous = async_mode_requested(headers)
            else:
                asynchronous = prefers_async
        except InvalidAsyncModeError as exc:
            return json_response(422, {"error": str(exc)})
        idempotency_key = (
            first(headers, "idempotency-key") if "idempotency-key" in headers else None
        )
        if idempotency_key is not None and not (
            len(idempotency_key) <= settings.idempotency_key_max_length
            and IDEMPOTENCY_KEY.fullmatch(idempotency_key)
        ):
            limit = settings.idempotency_key_max_length
            return json_response(
                422,
                {"error": f"Idempotency-Key must be 1 to {limit} printable ASCII characters."},
            )
        try:
            # The model's validator itself: model_validate_json is a Python wrapper around it.
            parsed: Any = self._validate_json(body)
        except ValidationError as exc:
            return json_response(422, validation_error_body(pydantic_errors(exc), ("body",)))
        payload = parsed.input

        if not asynchronous:
            [result] = await services.model.predict_batch([payload])
            return JSONBytesResponse(orjson.dumps({"input": payload, "result": result}), 200)

        deadline_at = time.time() + parsed.deadline_s if parsed.deadline_s else None
        wait_s = preferred_wait_s(headers, settings.max_wait_s) if "prefer" in headers else None

        job_id = services.store.new_job_id(idempotency_key, owner)
        # Registered before the submit, so a completion between it and the wait still wakes.
        woken = services.notifier.add_waiter(job_id) if wait_s is not None else None
        try:
            try:
                submission = await services.backend.submit(
                    job_id,
                    payload,
                    orjson.dumps(payload),
                    deadline_at=deadline_at,
                    idempotency_key=idempotency_key,
                    owner=owner,
                )
            except QueueFullError as exc:
                return json_response(
                    429,
                    {"error": f"The queue is full ({exc.backlog} jobs waiting); retry later."},
                    {"Retry-After": str(exc.retry_after_s)},
                )
            except IdempotencyConflictError:
                return json_response(422, {"error": IDEMPOTENCY_CONFLICT})
            # The background backend runs the work only after this response is sent.
            if wait_s is not None and woken is not None and submission.after is None:
                with metrics.long_poll_waiting():
                    if submission.replayed:
                        job = await wait_until_final(
                            services.notifier, services.store, submission.job_id, wait_s, owner
                        )
                    else:
                        job = await await_final(services.store, job_id, woken, wait_s, owner)
                if job is not None and job.status.is_final:
                    return job_response(job, settings, {"Preference-Applied": f"wait={wait_s:g}"})
        finally:
            if woken is not None:
                services.notifier.remove_waiter(job_id, woken)

        prediction_id = str(submission.job_id)
        answer_headers = {"Location": f"{root_path}/predict/{prediction_id}"}
        if submission.replayed:
            answer_headers["Idempotent-Replayed"] = "true"
        if prefers_async:
            answer_headers["Preference-Applied"] = "respond-async"
        return json_response(
            202,
            {"prediction_id": prediction_id, "status": _QUEUED},
            answer_headers,
            background=BackgroundTask(submission.after) if submission.after else None,
        )

    async def poll(
        self, services: Services, prediction_id: UUID, wait: float | None, owner: str | None
    ) -> JSONBytesResponse:
        if wait:
            with metrics.long_poll_waiting():
                job = await wait_until_final(
                    services.notifier, services.store, prediction_id, wait, owner
                )
        else:
            job = await services.store.get(prediction_id, owner)
        if job is None:
            return json_response(404, {"error": NOT_FOUND})
        return job_response(job, self.settings)
