"""What a job's state reads as, wherever it is told: a poll's body, an event stream's event, a
webhook's data. The messages are the API's first version's, kept exactly."""

from typing import Any, Final

from service.jobs.status import JobStatus
from service.jobs.store import Job

STILL_PROCESSING: Final = "Prediction is still being processed."
FAILED: Final = "Prediction failed."
EXPIRED: Final = "Prediction expired before it could run."
CANCELED: Final = "Prediction canceled."

_UNSUCCESSFUL = {
    JobStatus.FAILED: FAILED,
    JobStatus.EXPIRED: EXPIRED,
    JobStatus.CANCELED: CANCELED,
}


def job_body(job: Job) -> tuple[int, dict[str, Any]]:
    """The status a poll answers with, and its body: 200 with the result or why there is
    none once final, 202 while the job waits or runs."""
    common = {"prediction_id": job.id, "status": job.status.value}
    if job.status is JobStatus.SUCCEEDED:
        return 200, {
            "input": job.input,
            "result": job.result,
            **common,
            "created_at": job.created_at,
            "finished_at": job.finished_at,
        }
    if not job.status.is_final:
        return 202, {"error": STILL_PROCESSING, **common}
    return 200, {"error": _UNSUCCESSFUL[job.status], **common, "reason": job.error}
