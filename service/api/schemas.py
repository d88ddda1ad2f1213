"""Bodies of every response, as the OpenAPI document shows them. The keys and messages of the
API's first version are kept exactly."""

from typing import Annotated, Any, Final, Literal, get_args, get_origin
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, create_model

from service.jobs.status import JobStatus

STILL_PROCESSING: Final = "Prediction is still being processed."
NOT_FOUND: Final = "Prediction ID not found."
FAILED: Final = "Prediction failed."
EXPIRED: Final = "Prediction expired before it could run."
STORAGE_UNAVAILABLE: Final = "Storage is unavailable; retry later."
DRAINING: Final = "This process is stopping; retry on another."
INTERNAL_ERROR: Final = "Internal error; it has been logged."
IDEMPOTENCY_CONFLICT: Final = "This Idempotency-Key was already used with a different body."


class Accepted(BaseModel):
    prediction_id: UUID
    status: Literal[JobStatus.QUEUED] = JobStatus.QUEUED


class StillProcessing(BaseModel):
    error: Literal["Prediction is still being processed."] = STILL_PROCESSING
    prediction_id: UUID
    status: Literal[JobStatus.QUEUED, JobStatus.RUNNING]


class Unsuccessful(BaseModel):
    error: str = Field(examples=[FAILED, EXPIRED])
    prediction_id: UUID
    status: Literal[JobStatus.FAILED, JobStatus.EXPIRED]
    reason: str | None = Field(None, description="Why, when known (the model's error type).")


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


def prediction_models(
    input_type: Any, example: Any, max_input_chars: int
) -> tuple[type[BaseModel], type[BaseModel]]:
    """The request and result bodies for the configured model's input type; a text input is
    at most MAX_INPUT_CHARS long."""
    if input_type is str or (
        get_origin(input_type) is Annotated and get_args(input_type)[0] is str
    ):
        input_type = Annotated[input_type, Field(max_length=max_input_chars)]
    request = create_model(
        "PredictRequest",
        # Strict: JSON `true` is no number of seconds, "5.1" no measurement; what the
        # schema says is what is accepted.
        __config__=ConfigDict(strict=True, json_schema_extra={"examples": [{"input": example}]}),
        input=(input_type, ...),
        deadline_s=(
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
    )
    result = create_model("PredictionResult", __base__=_ResultFields, input=(input_type, ...))
    return request, result
