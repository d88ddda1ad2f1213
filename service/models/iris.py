"""A real model: a scikit-learn classifier of iris flowers, trained on the dataset that ships
inside scikit-learn (no download). `python -m service train-iris PATH` trains and saves it.

scikit-learn is an optional dependency (the `sklearn` extra): it is imported when the model is
trained or loaded, not when the service starts with another model."""

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, FiniteFloat

FEATURES = ("sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)")
IrisFeatures = Annotated[
    list[FiniteFloat],
    Field(
        min_length=4,
        max_length=4,
        description="Four measurements in cm: " + ", ".join(FEATURES) + ".",
        examples=[[5.1, 3.5, 1.4, 0.2]],
    ),
]


def train(path: Path) -> None:
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = load_iris()
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    classifier.fit(data.data, data.target)
    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump({"classifier": classifier, "classes": list(data.target_names)}, path)


class IrisModel:
    name = "iris"
    input_type = IrisFeatures
    example_input = (5.1, 3.5, 1.4, 0.2)

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise FileNotFoundError(f"no model artifact at {path}: run `make model` first")
        import joblib
        import sklearn

        # The artifact is one this project trained itself (`make model`); joblib unpickles it.
        artifact = joblib.load(path)
        self._classifier = artifact["classifier"]
        self._classes: list[str] = artifact["classes"]
        self.version = f"sklearn-{sklearn.__version__}"

    def _predict(self, inputs: Sequence[Any]) -> list[str]:
        import numpy as np

        labels = self._classifier.predict(np.asarray(inputs, dtype=np.float64))
        return [self._classes[int(label)] for label in labels]

    async def predict_batch(self, inputs: Sequence[Any]) -> list[str]:
        return await asyncio.to_thread(self._predict, inputs)
