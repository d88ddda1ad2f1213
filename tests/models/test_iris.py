"""The real scikit-learn model, end to end."""

from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

SETOSA = [5.1, 3.5, 1.4, 0.2]
VIRGINICA = [6.7, 3.0, 5.2, 2.3]


@pytest.fixture
def iris(make_client: Callable[..., TestClient], iris_artifact: Path) -> TestClient:
    return make_client(model="iris", model_path=iris_artifact)


def test_sync_prediction_is_the_class_name(iris: TestClient) -> None:
    assert iris.post("/predict", json={"input": SETOSA}).json() == {
        "input": SETOSA,
        "result": "setosa",
    }
    assert iris.post("/predict", json={"input": VIRGINICA}).json()["result"] == "virginica"


def test_async_prediction_end_to_end(iris: TestClient) -> None:
    accepted = iris.post("/predict", json={"input": VIRGINICA}, headers={"async_mode": "true"})
    assert accepted.status_code == 202
    polled = iris.get(accepted.headers["location"] + "?wait=5").json()
    assert polled["input"] == VIRGINICA
    assert polled["result"] == "virginica"


@pytest.mark.parametrize(
    "bad", [[1.0, 2.0, 3.0], [1, 2, 3, 4, 5], "setosa", ["a", "b", "c", "d"], [1, 2, 3, None]]
)
def test_wrong_feature_vectors_are_422(iris: TestClient, bad: object) -> None:
    response = iris.post("/predict", json={"input": bad})
    assert response.status_code == 422
    assert response.json()["error"].startswith("Invalid request: body.input")


def test_non_finite_features_are_422(iris: TestClient) -> None:
    response = iris.post(
        "/predict",
        content=b'{"input": [1, 2, 3, NaN]}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422


def test_input_schema_is_in_openapi(iris: TestClient) -> None:
    schema = iris.get("/openapi.json").json()
    body = schema["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"][
        "schema"
    ]
    features = body["properties"]["input"]
    assert features["type"] == "array"
    assert features["minItems"] == features["maxItems"] == 4
    assert "petal width" in features["description"]


def test_missing_artifact_fails_loudly(
    make_client: Callable[..., TestClient], tmp_path: Path
) -> None:
    with pytest.raises(FileNotFoundError, match="make model"):
        make_client(model="iris", model_path=tmp_path / "absent.joblib")
