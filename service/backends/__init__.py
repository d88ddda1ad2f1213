from service.backends.background import BackgroundBackend
from service.backends.base import (
    AfterResponse,
    AsyncBackend,
    IdempotencyConflictError,
    QueueFullError,
    Submission,
)
from service.backends.stream import StreamBackend

__all__ = [
    "AfterResponse",
    "AsyncBackend",
    "BackgroundBackend",
    "IdempotencyConflictError",
    "QueueFullError",
    "StreamBackend",
    "Submission",
]
