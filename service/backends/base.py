from collections.abc import Awaitable, Callable
from typing import Any, Protocol
from uuid import UUID

# Work a backend wants run after the 202 is sent, in the same process (the seed's strategy).
AfterResponse = Callable[[], Awaitable[None]]


class AsyncBackend(Protocol):
    """How an accepted async prediction gets computed; chosen by ASYNC_BACKEND."""

    async def submit(self, job_id: UUID, payload: Any, input_json: bytes) -> AfterResponse | None:
        """Store the job durably enough to answer polls, then hand the work on."""
        ...

    async def close(self) -> None: ...
