import asyncio
import hashlib
import time
import uuid
from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import Field

_BLOCK = b"\0" * 65536


def _burn_cpu(seconds: float) -> None:
    # hashlib releases the GIL on large buffers, so this is real CPU work in a thread that
    # leaves the event loop free, like a native model library would.
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        hashlib.sha256(_BLOCK).digest()


class MockModel:
    """The API's first model, a random number as text, with knobs to emulate an I/O-bound or a
    CPU-bound model.

    `latency_ms` is awaited once per call (a remote model: a batch costs one trip);
    `cpu_ms` is burnt per input off the event loop (a local model: work grows with the batch).
    """

    name = "mock"
    version = "1"
    input_type = Annotated[str, Field(description="Any text; the mock ignores it.")]
    example_input = "some_input_data"

    def __init__(self, latency_ms: float = 0.0, cpu_ms: float = 0.0) -> None:
        self.latency_s = latency_ms / 1000
        self.cpu_s = cpu_ms / 1000

    async def predict_batch(self, inputs: Sequence[Any]) -> list[str]:
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        if self.cpu_s:
            await asyncio.to_thread(_burn_cpu, self.cpu_s * len(inputs))
        return [str(uuid.uuid4().int % 10000) for _ in inputs]
