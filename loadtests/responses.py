"""What a correct answer of the API looks like; anything else is a failure, whatever its status."""

import json
import uuid
from enum import Enum
from typing import Any

STILL_PROCESSING = "Prediction is still being processed."


class UnexpectedResponseError(Exception):
    """The status or the body is not what the API promises for this request."""


class Poll(Enum):
    DONE = "done"  # the result is in the body
    PENDING = "pending"  # still being processed: ask again


def json_object(body: bytes | str | None) -> dict[str, Any]:
    try:
        parsed = json.loads(body or b"")
    except ValueError as exc:
        raise UnexpectedResponseError(f"body is not JSON: {(body or b'')[:80]!r}") from exc
    if not isinstance(parsed, dict):
        raise UnexpectedResponseError(f"body is not a JSON object: {parsed!r:.80}")
    return parsed


def _expect_status(status: int, expected: int, body: bytes | None) -> None:
    if status != expected:
        raise UnexpectedResponseError(
            f"status {status}, expected {expected}: {(body or b'')[:120]!r}"
        )


def _expect_result(parsed: dict[str, Any], sent: Any) -> None:
    if parsed.get("input") != sent:
        raise UnexpectedResponseError(
            f"input not echoed: sent {sent!r}, got {parsed.get('input')!r}"
        )
    result = parsed.get("result")
    if not isinstance(result, str) or not result:
        raise UnexpectedResponseError(f"no result: {parsed!r:.120}")


def check_sync(status: int, body: bytes | None, sent: Any) -> None:
    """200 {"input": <what was sent>, "result": "<non-empty>"}."""
    _expect_status(status, 200, body)
    _expect_result(json_object(body), sent)


def check_accepted(status: int, body: bytes | None, location: str | None) -> str:
    """202 {"prediction_id": <uuid>, "status": "queued"} with a Location to poll; the id."""
    _expect_status(status, 202, body)
    parsed = json_object(body)
    prediction_id = parsed.get("prediction_id")
    try:
        uuid.UUID(str(prediction_id))
    except ValueError as exc:
        raise UnexpectedResponseError(f"prediction_id is not a UUID: {prediction_id!r}") from exc
    if parsed.get("status") != "queued":
        raise UnexpectedResponseError(f"status is not queued: {parsed.get('status')!r}")
    if location is None or not location.endswith(f"/predict/{prediction_id}"):
        raise UnexpectedResponseError(f"Location {location!r} does not name {prediction_id}")
    return str(prediction_id)


def check_poll(status: int, body: bytes | None, prediction_id: str, sent: Any) -> Poll:
    """200 with the result, or 202 "still being processed"; a failed job is a failure."""
    parsed = json_object(body)
    if status == 202 and parsed.get("error") == STILL_PROCESSING:
        return Poll.PENDING
    _expect_status(status, 200, body)
    check_success(parsed, prediction_id, sent)
    return Poll.DONE


def check_success(parsed: dict[str, Any], prediction_id: str, sent: Any) -> None:
    """A final poll body (also the final event's data and a webhook's `data`) of a success of
    this job, with its result."""
    if parsed.get("prediction_id") != prediction_id or parsed.get("status") != "succeeded":
        raise UnexpectedResponseError(f"not a success of {prediction_id}: {parsed!r:.160}")
    _expect_result(parsed, sent)
