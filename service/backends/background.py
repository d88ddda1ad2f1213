import logging
from typing import Any
from uuid import UUID

from service.backends.base import AfterResponse
from service.jobs import JobStore
from service.models import Model
from service.status import JobStatus

logger = logging.getLogger(__name__)


class BackgroundBackend:
    """The seed's strategy: FastAPI BackgroundTasks in the process that served the request.

    Kept as the reference to compare against: a worker that dies takes its pending work with
    it, leaving those jobs queued until their TTL ends.
    """

    def __init__(self, store: JobStore, model: Model) -> None:
        self.store = store
        self.model = model

    async def submit(self, job_id: UUID, payload: Any, input_json: bytes) -> AfterResponse | None:
        await self.store.create(job_id, input_json)

        async def run() -> None:
            try:
                [result] = await self.model.predict_batch([payload])
            except Exception as exc:
                logger.exception("event=prediction_failed prediction_id=%s", job_id)
                await self.store.finish(job_id, JobStatus.FAILED, error=f"{type(exc).__name__}")
                return
            await self.store.finish(job_id, JobStatus.SUCCEEDED, result=result)

        return run

    async def close(self) -> None:
        return None
