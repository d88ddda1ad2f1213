"""Bodies of every response, as the OpenAPI document shows them. The keys and messages of the
API's first version are kept exactly (a job's own are in service/jobs/answers.py)."""

from typing import Annotated, Any, Final, Literal, get_args, get_origin
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, create_model

from service.jobs.answers import CANCELED, EXPIRED, FAILED, STILL_PROCESSING
from service.jobs.status import JobStatus

NOT_FOUND: Final = "Prediction ID not found."
STORAGE_UNAVAILABLE: Final = "Storage is unavailable; retry later."
DRAINING: Final = "This process is stopping; retry on another."
INTERNAL_ERROR: Final = "Internal error; it has been logged."
IDEMPOTENCY_CONFLICT: Final = "This Idempotency-Key was already used with a different body."
NOT_CANCELED: Final = "Prediction had already finished; it was not canceled."
WEBHOOK_EVENTS: Final = ("start", "completed")


class Accepted(BaseModel):
    prediction_id: UUID
    status: Literal[JobStatus.QUEUED] = JobStatus.QUEUED


class StillProcessing(BaseModel):
    error: Literal["Prediction is still being processed."] = STILL_PROCESSING
    prediction_id: UUID
    status: Literal[JobStatus.QUEUED, JobStatus.RUNNING]


class Unsuccessful(BaseModel):
    error: str = Field(examples=[FAILED, EXPIRED, CANCELED])
    prediction_id: UUID
    status: Literal[JobStatus.FAILED, JobStatus.EXPIRED, JobStatus.CANCELED]
    reason: str | None = Field(None, description="Why, when known (the model's error type).")


class Canceled(BaseModel):
    error: Literal["Prediction canceled."] = CANCELED
    prediction_id: UUID
    status: Literal[JobStatus.CANCELED] = JobStatus.CANCELED
    reason: None = None


class NotCanceled(BaseModel):
    error: Literal["Prediction had already finished; it was not canceled."] = NOT_CANCELED
    prediction_id: UUID
    status: Literal[JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.EXPIRED]


class BatchAccepted(BaseModel):
    prediction_id: UUID
    status: Literal[JobStatus.QUEUED] = JobStatus.QUEUED


class BatchRefused(BaseModel):
    error: str = Field(description="Why this input was not accepted; the others may have been.")
    code: Literal[429, 503] = Field(
        description="The status a single submit would have answered: 429 queue full, 503 "
        "not confirmed by the replicas (retry after Retry-After)."
    )


class BatchAcceptedBody(BaseModel):
    predictions: list[BatchAccepted | BatchRefused] = Field(
        description="One per input, in the order of `inputs`."
    )


class NotFound(BaseModel):
    error: Literal["Prediction ID not found."] = NOT_FOUND


class ErrorBody(BaseModel):
    error: str = Field(description="What went wrong, for a person to act on.")
    detail: list[dict[str, Any]] | None = Field(
        None, description="One entry per problem, where the request was invalid."
    )


class _ResultFields(BaseModel):
    result: str = Field(description="The model's prediction.")
    prediction_id: UUID | None = Field(None, description="Set when the result was polled.")
    status: Literal[JobStatus.SUCCEEDED] | None = None
    created_at: float | None = Field(None, description="Unix time the job was accepted.")
    finished_at: float | None = Field(None, description="Unix time the result was stored.")


class Health(BaseModel):
    status: str


def _input_annotation(input_type: Any, max_input_chars: int) -> Any:
    """The configured model's input type; a text input is at most MAX_INPUT_CHARS long."""
    if input_type is str or (
        get_origin(input_type) is Annotated and get_args(input_type)[0] is str
    ):
        return Annotated[input_type, Field(max_length=max_input_chars)]
    return input_type


def _async_fields() -> dict[str, Any]:
    """The fields of an async submit, single or batch."""
    return {
        "deadline_s": (
            float | None,
            Field(
                None,
                gt=0,
                le=86_400,
                description=(
                    "Async mode: seconds from now by which a worker must start the job; "
                    "one still queued then ends `expired` instead of running."
                ),
            ),
        ),
        "webhook": (
            str | None,
            Field(
                None,
                min_length=1,
                max_length=2048,
                description=(
                    "Async mode: a URL the job's events are POSTed to, signed as the Standard "
                    "Webhooks specification says (https, and a public address, unless the "
                    "service allows otherwise; 422 when refused)."
                ),
            ),
        ),
        "webhook_events_filter": (
            list[Literal["start", "completed"]] | None,
            Field(
                None,
                min_length=1,
                max_length=2,
                description='Which events go to `webhook` (default `["completed"]`).',
            ),
        ),
    }


def prediction_models(
    input_type: Any, example: Any, max_input_chars: int
) -> tuple[type[BaseModel], type[BaseModel]]:
    """The request and result bodies for the configured model's input type; a text input is
    at most MAX_INPUT_CHARS long."""
    input_type = _input_annotation(input_type, max_input_chars)
    request = create_model(
        "PredictRequest",
        # Strict: JSON `true` is no number of seconds, "5.1" no measurement; what the
        # schema says is what is accepted.
        __config__=ConfigDict(strict=True, json_schema_extra={"examples": [{"input": example}]}),
        input=(input_type, ...),
        **_async_fields(),
    )
    result = create_model("PredictionResult", __base__=_ResultFields, input=(input_type, ...))
    return request, result


def batch_models(
    input_type: Any, example: Any, max_input_chars: int, max_inputs: int
) -> tuple[type[BaseModel], type[BaseModel]]:
    """POST /predict/batch's request body (at most BATCH_MAX_INPUTS inputs) and its sync
    answer: one item per input, in order, each a result or why there is none."""
    input_type = _input_annotation(input_type, max_input_chars)
    request = create_model(
        "PredictBatchRequest",
        __config__=ConfigDict(
            strict=True, json_schema_extra={"examples": [{"inputs": [example, example]}]}
        ),
        inputs=(list[input_type], Field(min_length=1, max_length=max_inputs)),
        **_async_fields(),
    )
    item = create_model("BatchResult", input=(input_type, ...), result=(str, ...))
    failed = create_model(
        "BatchFailure",
        input=(input_type, ...),
        error=(str, Field(FAILED, examples=[FAILED])),
        reason=(str, Field(description="The model's error type.")),
    )
    answer = create_model("PredictBatchResult", predictions=(list[item | failed], ...))
    return request, answer
