import contextlib
import re
import time
from typing import Annotated, Any
from uuid import UUID, uuid4

import orjson
from fastapi import APIRouter, Query, Request, Response
from pydantic import ValidationError
from starlette.background import BackgroundTask

from service.async_mode import OPENAPI_PARAMETERS, InvalidAsyncModeError, async_mode_requested
from service.auth import key_id_of
from service.backends import IdempotencyConflictError, QueueFullError
from service.deps import ServicesDep
from service.jobs import Job
from service.models import Model
from service.notifier import await_final, wait_until_final
from service.prefer import preferred_wait_s
from service.responses import json_response, pydantic_errors, validation_error_body
from service.schemas import (
    EXPIRED,
    FAILED,
    IDEMPOTENCY_CONFLICT,
    NOT_FOUND,
    STILL_PROCESSING,
    Accepted,
    ErrorBody,
    NotFound,
    StillProcessing,
    Unsuccessful,
    prediction_models,
)
from service.settings import Settings
from service.status import JobStatus

# Printable ASCII, no space at either end (HTTP strips those): what a header carries intact.
IDEMPOTENCY_KEY = re.compile(r"[!-~](?:[ -~]*[!-~])?")

_ERRORS: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorBody, "description": "The body, a header or a parameter is invalid."},
    503: {"model": ErrorBody, "description": "Redis is unavailable; retry after Retry-After."},
}


def job_response(job: Job, settings: Settings, headers: dict[str, str] | None = None) -> Response:
    """The seed's bodies for a stored job, with its id and state."""
    common = {"prediction_id": str(job.id), "status": job.status.value}
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


def predict_router(model: Model, settings: Settings) -> APIRouter:
    request_model, result_model = prediction_models(
        model.input_type, model.example_input, settings.max_input_chars
    )
    router = APIRouter(tags=["predictions"])
    header_docs = [
        *OPENAPI_PARAMETERS,
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "description": (
                "Async mode: a repeated submit with the same key and body returns the first "
                "prediction_id instead of a new job; the same key with another body is 422."
            ),
            "schema": {
                "type": "string",
                "minLength": 1,
                "maxLength": settings.idempotency_key_max_length,
                "pattern": f"^{IDEMPOTENCY_KEY.pattern}$",
            },
        },
        {
            "name": "Prefer",
            "in": "header",
            "required": False,
            "description": (
                "Async mode: `wait=S` (RFC 7240) answers 200 with the result if it is ready "
                f"within S seconds (at most {settings.max_wait_s:g}), else 202 as usual."
            ),
            "schema": {"type": "string", "examples": ["wait=5"]},
        },
    ]

    @router.post(
        "/predict",
        summary="Predict, synchronously or asynchronously",
        description=(
            "Without async mode, answers 200 with the result. With the header "
            "`async_mode: true` (or `Async-Mode: true`), stores the job and answers 202 with a "
            "`prediction_id` and a `Location` to poll."
        ),
        responses={
            200: {
                "model": result_model | Unsuccessful,
                "description": "The prediction (sync mode, or async with `Prefer: wait`).",
            },
            202: {
                "model": Accepted,
                "description": "Accepted (async mode); poll the Location.",
                "headers": {"Location": {"schema": {"type": "string"}}},
                "links": {
                    "poll": {
                        "operationId": "get_prediction",
                        "parameters": {"prediction_id": "$response.body#/prediction_id"},
                    }
                },
            },
            413: {"model": ErrorBody, "description": "The body is over MAX_BODY_BYTES."},
            429: {
                "model": ErrorBody,
                "description": "The queue is full (MAX_QUEUE); retry after Retry-After seconds.",
                "headers": {"Retry-After": {"schema": {"type": "integer"}}},
            },
            **_ERRORS,
        },
        openapi_extra={
            "parameters": header_docs,
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": request_model.model_json_schema()}},
            },
        },
    )
    async def predict(request: Request, services: ServicesDep) -> Response:
        try:
            asynchronous = async_mode_requested(request.headers)
        except InvalidAsyncModeError as exc:
            return json_response(422, {"error": str(exc)})
        idempotency_key = request.headers.get("idempotency-key")
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
            parsed: Any = request_model.model_validate_json(await request.body())
        except ValidationError as exc:
            return json_response(422, validation_error_body(pydantic_errors(exc), ("body",)))
        payload = parsed.input

        if not asynchronous:
            [result] = await services.model.predict_batch([payload])
            return json_response(200, {"input": payload, "result": result})

        deadline_at = time.time() + parsed.deadline_s if parsed.deadline_s else None
        wait_s = preferred_wait_s(request.headers, settings.max_wait_s)

        owner = key_id_of(request.scope)
        job_id = uuid4()
        watching = services.notifier.watch(job_id) if wait_s is not None else None
        with watching or contextlib.nullcontext() as woken:
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
            # The seed's background strategy runs the work only after this response is sent.
            if wait_s is not None and woken is not None and submission.after is None:
                if submission.replayed:
                    job = await wait_until_final(
                        services.notifier, services.store, submission.job_id, wait_s, owner
                    )
                else:
                    job = await await_final(services.store, job_id, woken, wait_s, owner)
                if job is not None and job.status.is_final:
                    return job_response(job, settings, {"Preference-Applied": f"wait={wait_s:g}"})

        headers = {"Location": f"{request.scope.get('root_path', '')}/predict/{submission.job_id}"}
        if submission.replayed:
            headers["Idempotent-Replayed"] = "true"
        return json_response(
            202,
            {"prediction_id": str(submission.job_id), "status": JobStatus.QUEUED.value},
            headers,
            background=BackgroundTask(submission.after) if submission.after else None,
        )

    @router.get(
        "/predict/{prediction_id}",
        operation_id="get_prediction",
        summary="The result of an async prediction",
        responses={
            200: {
                "model": result_model | Unsuccessful,
                "description": "Finished: the result, or why there is none (failed, expired).",
            },
            202: {
                "model": StillProcessing,
                "description": "Still being processed; poll again after Retry-After seconds.",
                "headers": {"Retry-After": {"schema": {"type": "integer"}}},
            },
            404: {"model": NotFound, "description": "No prediction has this id (or it expired)."},
            **_ERRORS,
        },
    )
    async def get_prediction(
        request: Request,
        prediction_id: UUID,
        services: ServicesDep,
        wait: Annotated[
            float | None,
            Query(
                ge=0,
                le=settings.max_wait_s,
                description="Long-poll: answer as soon as the job is final, waiting at most "
                "this many seconds (then 202 as usual).",
            ),
        ] = None,
    ) -> Response:
        owner = key_id_of(request.scope)
        if wait:
            job = await wait_until_final(
                services.notifier, services.store, prediction_id, wait, owner
            )
        else:
            job = await services.store.get(prediction_id, owner)
        if job is None:
            return json_response(404, {"error": NOT_FOUND})
        return job_response(job, settings)

    return router
