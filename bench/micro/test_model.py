"""Model calls: one input per call against one batched call, for the mock and the iris model."""

import asyncio
from pathlib import Path
from typing import Any

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from service.models.base import Model
from service.models.iris import IrisModel, train
from service.models.mock import MockModel

BATCH = 64


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> IrisModel:
    path: Path = tmp_path_factory.mktemp("model") / "iris.joblib"
    train(path)
    return IrisModel(path)


def _inputs(model: Model) -> list[Any]:
    return [model.example_input] * BATCH


@pytest.mark.benchmark(group="model, 64 inputs")
@pytest.mark.parametrize("name", ["mock", "iris"])
@pytest.mark.parametrize("batched", [False, True], ids=["per input", "batched"])
def test_model_calls(
    benchmark: BenchmarkFixture,
    loop: asyncio.AbstractEventLoop,
    iris: IrisModel,
    name: str,
    batched: bool,
) -> None:
    model: Model = iris if name == "iris" else MockModel(cpu_ms=0.05)
    inputs = _inputs(model)

    async def run() -> int:
        if batched:
            return len(await model.predict_batch(inputs))
        return sum([len(await model.predict_batch([x])) for x in inputs])

    assert benchmark(lambda: loop.run_until_complete(run())) == BATCH
