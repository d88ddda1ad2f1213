from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel

from service.api.handlers import IDEMPOTENCY_KEY, PredictionHandlers
from service.api.headers import ASYNC_MODE_PARAMETERS, pick_headers
from service.api.middleware.api_keys import key_id_of
from service.api.schemas import (
    Accepted,
    BatchAcceptedBody,
    Canceled,
    ErrorBody,
    NotCanceled,
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
_TOO_LARGE: dict[str, Any] = {
    "model": ErrorBody,
    "description": "The body is over MAX_BODY_BYTES.",
}


def _queue_full(description: str) -> dict[str, Any]:
    return {
        "model": ErrorBody,
        "description": description,
        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
    }


def _json_body(model: type[BaseModel]) -> dict[str, Any]:
    """The request body as the OpenAPI document shows it: the handlers read it themselves."""
    return {
        "required": True,
        "content": {"application/json": {"schema": model.model_json_schema()}},
    }


def predict_router(
    handlers: PredictionHandlers,
    result_model: type[BaseModel],
    settings: Settings,
    batch_result_model: type[BaseModel] | None = None,
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
                    },
                    "cancel": {
                        "operationId": "cancel_prediction",
                        "parameters": {"prediction_id": "$response.body#/prediction_id"},
                    },
                },
            },
            413: _TOO_LARGE,
            429: _queue_full("The queue is full (MAX_QUEUE); retry after Retry-After seconds."),
            **_ERRORS,
        },
        openapi_extra={"parameters": header_docs, "requestBody": _json_body(request_model)},
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

    @router.post(
        "/predict/{prediction_id}/cancel",
        operation_id="cancel_prediction",
        summary="Cancel an async prediction",
        description=(
            "A queued job ends `canceled` and never runs; a running job ends `canceled` and "
            "its result is dropped. Cancelling a canceled job answers the same 200 again. A "
            "job that had already ended is left as it was: 409 with its state. Its waiters "
            "(long-poll, events) and its `completed` webhook see `canceled`."
        ),
        responses={
            200: {"model": Canceled, "description": "Canceled (now, or already)."},
            404: {"model": NotFound, "description": "No prediction has this id (or it expired)."},
            409: {"model": NotCanceled, "description": "It had already ended; nothing changed."},
            **_ERRORS,
        },
    )
    async def cancel_prediction(
        request: Request, prediction_id: UUID, services: ServicesDep
    ) -> Response:
        return await handlers.cancel(services, prediction_id, key_id_of(request.scope))

    if handlers.batch_model is not None and batch_result_model is not None:

        @router.post(
            "/predict/batch",
            summary="Predict many inputs at once",
            description=(
                f"Up to {settings.batch_max_inputs} inputs (422 past it). Without async mode, "
                "the model is called once for the batch and the answers come in order (an "
                "input the model failed on says so; the others stand). In async mode (the "
                "same headers as `POST /predict`), one prediction per input, stored in one "
                "write per shard, each accepted or refused alone: 202 with a `prediction_id` "
                "(or why not) per input, in order; 429/503 when none was accepted. "
                "`Idempotency-Key` is not supported on batches."
            ),
            responses={
                200: {"model": batch_result_model, "description": "The results, in order."},
                202: {"model": BatchAcceptedBody, "description": "Accepted (async mode)."},
                413: _TOO_LARGE,
                429: _queue_full("The queue is full: no input was accepted."),
                **_ERRORS,
            },
            openapi_extra={
                "parameters": ASYNC_MODE_PARAMETERS,
                "requestBody": _json_body(handlers.batch_model),
            },
        )
        async def predict_batch(request: Request, services: ServicesDep) -> Response:
            return await handlers.predict_batch(
                services,
                pick_headers(request.headers.raw),
                await request.body(),
                key_id_of(request.scope),
            )

    return router
