from collections.abc import Sequence
from typing import Any, Protocol


class Model(Protocol):
    """A model takes a batch of inputs and returns one result string per input, in order."""

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...

    @property
    def input_type(self) -> Any:
        """The annotation of a request's "input" field; it becomes the OpenAPI schema."""

    @property
    def example_input(self) -> Any: ...

    async def predict_batch(self, inputs: Sequence[Any]) -> list[str]: ...
