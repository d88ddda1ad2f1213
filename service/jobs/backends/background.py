import logging
import time
from typing import Any
from uuid import UUID

from service import metrics
from service.jobs.backends.base import IdempotencyConflictError, Submission
from service.jobs.status import JobStatus
from service.jobs.store import JobStore, WebhookTarget
from service.models.base import Model

logger = logging.getLogger(__name__)


class BackgroundBackend:
    """The naive strategy: FastAPI BackgroundTasks in the process that served the request.

    Kept as the reference to compare against: a worker that dies takes its pending work with
    it, leaving those jobs queued until their TTL ends, and a slow model runs in the very
    process that serves HTTP. There is no admission control and deadlines are not enforced.
    """

    def __init__(self, store: JobStore, model: Model, *, log_inputs: bool = False) -> None:
        self.store = store
        self.model = model
        self.log_inputs = log_inputs

    async def submit(
        self,
        job_id: UUID,
        payload: Any,
        input_json: bytes,
        *,
        deadline_at: float | None = None,
        idempotency_key: str | None = None,
        owner: str | None = None,
        webhook: WebhookTarget | None = None,
    ) -> Submission:
        if webhook is not None:  # the settings refuse WEBHOOK_SECRET with this backend
            raise ValueError("webhooks need ASYNC_BACKEND=stream")
        admission = await self.store.submit(
            job_id, input_json, enqueue=False, idempotency_key=idempotency_key, owner=owner
        )
        if admission.verdict == "conflict":
            raise IdempotencyConflictError
        if admission.verdict == "duplicate" and admission.existing_id is not None:
            return Submission(admission.existing_id, replayed=True)
        metrics.job_submitted()
        created_at = time.time()

        async def run() -> None:
            metrics.job_started(created_at)
            try:
                [result] = await self.model.predict_batch([payload])
            except Exception as exc:
                logger.warning(
                    "event=model_error prediction_id=%s error=%s",
                    job_id,
                    type(exc).__name__,
                    # The message and traceback may quote the input.
                    exc_info=exc if self.log_inputs else None,
                )
                await self.store.finish(job_id, JobStatus.FAILED, error=type(exc).__name__)
                metrics.job_finished(JobStatus.FAILED, created_at)
                return
            await self.store.finish(job_id, JobStatus.SUCCEEDED, result=result)
            metrics.job_finished(JobStatus.SUCCEEDED, created_at)

        return Submission(job_id, after=run)

    def start(self) -> None:
        return None

    async def close(self) -> None:
        return None
