from enum import StrEnum


class JobStatus(StrEnum):
    QUEUED = "queued"  # accepted and stored, no worker has picked it up yet
    RUNNING = "running"  # a worker is calling the model with it
    SUCCEEDED = "succeeded"  # the result is stored in the job hash
    FAILED = "failed"  # the model raised; the error is stored in the job hash
    EXPIRED = "expired"  # its deadline passed before a worker could run it
    CANCELED = "canceled"  # a client canceled it before it ended; no result is kept

    @property
    def is_final(self) -> bool:
        return self in _FINAL


_FINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.EXPIRED, JobStatus.CANCELED})
