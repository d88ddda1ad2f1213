from typing import Any
from uuid import UUID, uuid4

import orjson
from fastapi import APIRouter, Request, Response
from pydantic import ValidationError
from starlette.background import BackgroundTask

from service.async_mode import OPENAPI_PARAMETERS, InvalidAsyncModeError, async_mode_requested
from service.deps import ServicesDep
from service.models import Model
from service.responses import json_response, pydantic_errors, validation_error_body
from service.schemas import (
    EXPIRED,
    FAILED,
    NOT_FOUND,
    STILL_PROCESSING,
    Accepted,
    ErrorBody,
    NotFound,
    StillProcessing,
    Unsuccessful,
    prediction_models,
)
from service.status import JobStatus

_ERRORS: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorBody, "description": "The body or a header is invalid."},
    503: {"model": ErrorBody, "description": "Redis is unavailable; retry after Retry-After."},
}


def predict_router(model: Model) -> APIRouter:
    request_model, result_model = prediction_models(model.input_type, model.example_input)
    router = APIRouter(tags=["predictions"])

    @router.post(
        "/predict",
        summary="Predict, synchronously or asynchronously",
        description=(
            "Without async mode, answers 200 with the result. With the header "
            "`async_mode: true` (or `Async-Mode: true`), stores the job and answers 202 with a "
            "`prediction_id` and a `Location` to poll."
        ),
        responses={
            200: {"model": result_model, "description": "The prediction (sync mode)."},
            202: {
                "model": Accepted,
                "description": "Accepted (async mode); poll the Location.",
                "headers": {"Location": {"schema": {"type": "string"}}},
            },
            413: {"model": ErrorBody, "description": "The body is over MAX_BODY_BYTES."},
            **_ERRORS,
        },
        openapi_extra={
            "parameters": OPENAPI_PARAMETERS,
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
        try:
            parsed = request_model.model_validate_json(await request.body())
        except ValidationError as exc:
            return json_response(422, validation_error_body(pydantic_errors(exc), ("body",)))
        payload = parsed.input  # type: ignore[attr-defined]

        if not asynchronous:
            [result] = await services.model.predict_batch([payload])
            return json_response(200, {"input": payload, "result": result})

        job_id = uuid4()
        after = await services.backend.submit(job_id, payload, orjson.dumps(payload))
        location = f"{request.scope.get('root_path', '')}/predict/{job_id}"
        return json_response(
            202,
            {"prediction_id": str(job_id), "status": JobStatus.QUEUED.value},
            {"Location": location},
            background=BackgroundTask(after) if after is not None else None,
        )

    @router.get(
        "/predict/{prediction_id}",
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
    async def get_prediction(prediction_id: UUID, services: ServicesDep) -> Response:
        job = await services.store.get(prediction_id)
        if job is None:
            return json_response(404, {"error": NOT_FOUND})
        common = {"prediction_id": str(job.id), "status": job.status.value}
        if job.status is JobStatus.SUCCEEDED:
            return json_response(
                200,
                {
                    "input": job.input,
                    "result": job.result,
                    **common,
                    "created_at": job.created_at,
                    "finished_at": job.finished_at,
                },
            )
        if not job.status.is_final:
            return json_response(
                202,
                {"error": STILL_PROCESSING, **common},
                {"Retry-After": str(services.settings.retry_after_s)},
            )
        message = FAILED if job.status is JobStatus.FAILED else EXPIRED
        return json_response(200, {"error": message, **common, "reason": job.error})

    return router
