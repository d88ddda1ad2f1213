"""Parsing the request body and writing the response body: orjson, stdlib json, pydantic-core."""

import json
from typing import Any

import orjson
import pytest
from pydantic import BaseModel, TypeAdapter
from pytest_benchmark.fixture import BenchmarkFixture

REQUEST = b'{"input": "some_input_data"}'
RESPONSE = {"input": "some_input_data", "result": "7206"}


class PredictRequest(BaseModel):
    input: str


RESPONSE_ADAPTER: TypeAdapter[dict[str, str]] = TypeAdapter(dict[str, str])


@pytest.mark.benchmark(group="parse request")
@pytest.mark.parametrize(
    "parse",
    [
        pytest.param(lambda b: json.loads(b)["input"], id="json"),
        pytest.param(lambda b: orjson.loads(b)["input"], id="orjson"),
        pytest.param(lambda b: PredictRequest.model_validate_json(b).input, id="pydantic-core"),
    ],
)
def test_parse_request(benchmark: BenchmarkFixture, parse: Any) -> None:
    assert benchmark(parse, REQUEST) == "some_input_data"


@pytest.mark.benchmark(group="write response")
@pytest.mark.parametrize(
    "dump",
    [
        pytest.param(lambda d: json.dumps(d, separators=(",", ":")).encode(), id="json"),
        pytest.param(orjson.dumps, id="orjson"),
        pytest.param(RESPONSE_ADAPTER.dump_json, id="pydantic-core"),
    ],
)
def test_write_response(benchmark: BenchmarkFixture, dump: Any) -> None:
    assert orjson.loads(benchmark(dump, RESPONSE)) == RESPONSE
