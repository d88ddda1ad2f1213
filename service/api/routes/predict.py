from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel

from service.api.handlers import IDEMPOTENCY_KEY, PredictionHandlers
from service.api.headers import ASYNC_MODE_PARAMETERS, pick_headers
from service.api.middleware.api_keys import key_id_of
from service.api.schemas import (
    Accepted,
    ErrorBody,
    NotFound,
    StillProcessing,
    Unsuccessful,
)
from service.api.services import ServicesDep
from service.settings import Settings

_ERRORS: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorBody, "description": "The body, a header or a parameter is invalid."},
    503: {"model": ErrorBody, "description": "Redis is unavailable; retry after Retry-After."},
}


def predict_router(
    handlers: PredictionHandlers, result_model: type[BaseModel], settings: Settings
) -> APIRouter:
    """The routes as the OpenAPI document shows them; the work is in `handlers`."""
    request_model = handlers.request_model
    router = APIRouter(tags=["predictions"])
    header_docs = [
        *ASYNC_MODE_PARAMETERS,
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
                "RFC 7240 preferences. `respond-async` asks for async mode, as `async_mode: "
                "true` does (an async-mode header, when sent, decides), and the 202 says "
                "`Preference-Applied: respond-async`. In async mode, `wait=S` answers 200 "
                f"with the result if it is ready within S seconds (at most "
                f"{settings.max_wait_s:g}), else 202 as usual."
            ),
            "schema": {"type": "string", "examples": ["respond-async", "wait=5"]},
        },
    ]

    @router.post(
        "/predict",
        summary="Predict, synchronously or asynchronously",
        description=(
            "Without async mode, answers 200 with the result. With the header "
            "`async_mode: true` (or `Async-Mode: true`, or `Prefer: respond-async`), stores "
            "the job and answers 202 with a `prediction_id` and a `Location` to poll."
        ),
        responses={
            200: {
                "model": result_model | Unsuccessful,
                "description": "The prediction (sync mode, or async with `Prefer: wait`).",
            },
            202: {
                "model": Accepted,
                "description": "Accepted (async mode); poll the Location.",
                "headers": {
                    "Location": {"schema": {"type": "string"}},
                    "Preference-Applied": {
                        "description": "`respond-async`, when the request preferred it.",
                        "schema": {"type": "string"},
                    },
                },
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
        return await handlers.predict(
            services,
            pick_headers(request.headers.raw),
            await request.body(),
            request.scope.get("root_path", ""),
            key_id_of(request.scope),
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
        return await handlers.poll(services, prediction_id, wait, key_id_of(request.scope))

    return router
