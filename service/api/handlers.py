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
from service.api.schemas import (
    IDEMPOTENCY_CONFLICT,
    NOT_CANCELED,
    NOT_FOUND,
    WEBHOOK_EVENTS,
)
from service.api.services import Services
from service.jobs.answers import CANCELED, FAILED, job_body
from service.jobs.backends.base import IdempotencyConflictError, QueueFullError
from service.jobs.backends.stream import StreamBackend
from service.jobs.notifier import await_final, wait_until_final
from service.jobs.status import JobStatus
from service.jobs.store import Job, WebhookTarget
from service.jobs.webhook_urls import WebhookURLError, check_webhook_url
from service.settings import Settings

_QUEUED = JobStatus.QUEUED.value
# Printable ASCII, no space at either end (HTTP strips those): what a header carries intact.
IDEMPOTENCY_KEY = re.compile(r"[!-~](?:[ -~]*[!-~])?")


def job_response(
    job: Job, settings: Settings, headers: dict[str, str] | None = None
) -> JSONBytesResponse:
    """The bodies of the API's first version for a stored job, with its id and state."""
    status, body = job_body(job)
    if status == 202:
        retry = {"Retry-After": str(settings.retry_after_s)}
        return json_response(202, body, {**retry, **(headers or {})})
    return json_response(status, body, headers)


class _RefusedError(Exception):
    """A request refused with a 422 whose message this carries."""


def _async_requested(headers: HeaderValues) -> tuple[bool, bool]:
    """(async mode, whether `Prefer: respond-async` asked for it): the preference asks for
    the async answer too; an async-mode header, when there is one, decides. Raises
    InvalidAsyncModeError for an async-mode header that is neither true nor false."""
    prefers_async = "prefer" in headers and respond_async_preferred(headers)
    if "async_mode" in headers or "async-mode" in headers:
        return async_mode_requested(headers), prefers_async
    return prefers_async, prefers_async


class PredictionHandlers:
    def __init__(
        self,
        request_model: type[BaseModel],
        settings: Settings,
        batch_model: type[BaseModel] | None = None,
    ) -> None:
        self.request_model = request_model
        self.batch_model = batch_model
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
        # Most requests carry none of these: three lookups, no call.
        if "async_mode" in headers or "async-mode" in headers or "prefer" in headers:
            try:
                asynchronous, prefers_async = _async_requested(headers)
            except InvalidAsyncModeError as exc:
                return json_response(422, {"error": str(exc)})
        else:
            asynchronous = prefers_async = False
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
        webhook = None
        if parsed.webhook is not None or parsed.webhook_events_filter is not None:
            try:
                webhook = await self._webhook_target(parsed, asynchronous)
            except _RefusedError as exc:
                return json_response(422, {"error": str(exc)})

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
                    webhook=webhook,
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

    async def _webhook_target(self, parsed: Any, asynchronous: bool) -> WebhookTarget:
        """The webhook a submit asks for, checked (the URL against the SSRF rules, resolved
        now); raises _RefusedError with the reason."""
        if not asynchronous:
            raise _RefusedError("webhook needs async mode (async_mode: true).")
        if parsed.webhook is None:
            raise _RefusedError("webhook_events_filter needs a webhook.")
        if self.settings.webhook_secret is None:
            raise _RefusedError("This service sends no webhooks (WEBHOOK_SECRET is unset).")
        try:
            await check_webhook_url(parsed.webhook, self.settings)
        except WebhookURLError as exc:
            raise _RefusedError(f"webhook: {exc}") from exc
        events = parsed.webhook_events_filter or ["completed"]
        return WebhookTarget(parsed.webhook, tuple(e for e in WEBHOOK_EVENTS if e in events))

    async def cancel(
        self, services: Services, prediction_id: UUID, owner: str | None
    ) -> JSONBytesResponse:
        """A queued or running job ends `canceled` (200, as a poll then answers); cancelling
        it again is the same 200; a job that had ended is left as it was (409)."""
        cancellation = await services.store.cancel(prediction_id, owner)
        common = {"prediction_id": str(prediction_id)}
        if cancellation.verdict == "missing":
            return json_response(404, {"error": NOT_FOUND})
        if cancellation.verdict == "final" and cancellation.before is not None:
            return json_response(
                409, {"error": NOT_CANCELED, **common, "status": cancellation.before.value}
            )
        if cancellation.before is not JobStatus.CANCELED and cancellation.created_at is not None:
            metrics.job_finished(JobStatus.CANCELED, cancellation.created_at)
        body = {"error": CANCELED, **common, "status": JobStatus.CANCELED.value, "reason": None}
        return json_response(200, body)

    async def predict_batch(
        self, services: Services, headers: HeaderValues, body: bytes, owner: str | None
    ) -> JSONBytesResponse:
        """Sync: the model once for the whole batch, the answers in order (one by one only
        when the batch call raised, so that each input fails alone). Async: one job per
        input, one submit call per shard; each input accepted or refused alone."""
        if self.batch_model is None:
            raise RuntimeError("the handlers were built without a batch model")
        try:
            asynchronous, prefers_async = _async_requested(headers)
        except InvalidAsyncModeError as exc:
            return json_response(422, {"error": str(exc)})
        if "idempotency-key" in headers:
            # Refused, not ignored: a client that retries a batch must not believe it is safe.
            return json_response(422, {"error": "Idempotency-Key is not supported on batches."})
        try:
            parsed: Any = self.batch_model.model_validate_json(body)
        except ValidationError as exc:
            return json_response(422, validation_error_body(pydantic_errors(exc), ("body",)))
        try:
            webhook = (
                await self._webhook_target(parsed, asynchronous)
                if parsed.webhook is not None or parsed.webhook_events_filter is not None
                else None
            )
        except _RefusedError as exc:
            return json_response(422, {"error": str(exc)})
        inputs = parsed.inputs
        if not asynchronous:
            return json_response(200, {"predictions": await _predict_each(services, inputs)})
        if not isinstance(services.backend, StreamBackend):
            return json_response(422, {"error": "Async batches need ASYNC_BACKEND=stream."})
        deadline_at = time.time() + parsed.deadline_s if parsed.deadline_s else None
        outcomes = await services.backend.submit_many(
            [orjson.dumps(payload) for payload in inputs],
            deadline_at=deadline_at,
            owner=owner,
            webhook=webhook,
        )
        items: list[dict[str, Any]] = []
        retry_after: int | None = None
        for job_id, refusal in outcomes:
            if refusal is None:
                items.append({"prediction_id": str(job_id), "status": _QUEUED})
            else:
                retry_after = max(retry_after or 0, refusal.retry_after_s)
                items.append({"error": refusal.message, "code": refusal.code})
        answer_headers: dict[str, str] = {}
        if prefers_async:
            answer_headers["Preference-Applied"] = "respond-async"
        if retry_after is not None:
            answer_headers["Retry-After"] = str(retry_after)
        if all("error" in item for item in items):
            # Nothing was accepted: the batch is answered as its first input would have been.
            code = items[0]["code"]
            return json_response(
                code, {"error": items[0]["error"], "predictions": items}, answer_headers
            )
        return json_response(202, {"predictions": items}, answer_headers)


async def _predict_each(services: Services, inputs: list[Any]) -> list[dict[str, Any]]:
    try:
        results = await services.model.predict_batch(inputs)
        return [
            {"input": payload, "result": result}
            for payload, result in zip(inputs, results, strict=True)
        ]
    except Exception:  # one bad input must not fail the others: each alone
        items: list[dict[str, Any]] = []
        for payload in inputs:
            try:
                [result] = await services.model.predict_batch([payload])
                items.append({"input": payload, "result": result})
            except Exception as exc:
                items.append({"input": payload, "error": FAILED, "reason": type(exc).__name__})
        return items
