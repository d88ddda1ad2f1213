"""What the load tests send, per model the server runs (MODEL)."""

import random
from typing import Any, Literal

ModelName = Literal["mock", "iris"]

_MOCK_INPUTS = ["some_input_data", "a longer piece of text to predict on", "x"]

# Rows of the iris data set (sepal length, sepal width, petal length, petal width, in cm),
# two of each species, so that every class of the classifier is exercised.
_IRIS_INPUTS = [
    [5.1, 3.5, 1.4, 0.2],
    [4.9, 3.0, 1.4, 0.2],
    [7.0, 3.2, 4.7, 1.4],
    [5.7, 2.8, 4.5, 1.3],
    [6.3, 3.3, 6.0, 2.5],
    [6.7, 3.0, 5.2, 2.3],
]

_INPUTS: dict[ModelName, list[Any]] = {"mock": _MOCK_INPUTS, "iris": _IRIS_INPUTS}


def random_input(model: ModelName) -> Any:
    return random.choice(_INPUTS[model])  # noqa: S311 - load, not security
