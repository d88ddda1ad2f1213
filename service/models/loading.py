from service.models.base import Model
from service.models.iris import IrisModel
from service.models.measured import MeasuredModel
from service.models.mock import MockModel
from service.settings import Settings


def load_model(settings: Settings) -> Model:
    """The model MODEL names, measured when metrics are on."""
    model: Model
    if settings.model == "iris":
        model = IrisModel(settings.model_path)
    else:
        model = MockModel(settings.mock_latency_ms, settings.mock_cpu_ms)
    return instrumented(model, settings)


def instrumented(model: Model, settings: Settings) -> Model:
    """The model, timed and its batch sizes counted when metrics are on."""
    return MeasuredModel(model) if settings.metrics_enabled else model
