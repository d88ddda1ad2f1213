from collections.abc import Sequence
from time import perf_counter
from typing import Any

from service.metrics import observe_model_call, record_model
from service.models.base import Model


class MeasuredModel:
    """A model whose every call is timed and whose batch sizes are counted, whichever path
    (sync request, background task, queue worker) makes the call."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.name = model.name
        self.version = model.version
        self.input_type = model.input_type
        self.example_input = model.example_input
        record_model(model.name, model.version)

    async def predict_batch(self, inputs: Sequence[Any]) -> list[str]:
        start = perf_counter()
        try:
            return await self.model.predict_batch(inputs)
        finally:
            observe_model_call(len(inputs), perf_counter() - start)
