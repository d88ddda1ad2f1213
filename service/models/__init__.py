from service.models.base import Model
from service.settings import Settings


def load_model(settings: Settings) -> Model:
    return instrumented(_load(settings), settings)


def instrumented(model: Model, settings: Settings) -> Model:
    """The model, timed and its batch sizes counted when metrics are on."""
    if settings.metrics_enabled:
        from service.model_metrics import MeasuredModel  # it imports this package

        return MeasuredModel(model)
    return model


def _load(settings: Settings) -> Model:
    if settings.model == "iris":
        from service.models.iris import IrisModel

        return IrisModel(settings.model_path)
    from service.models.mock import MockModel

    return MockModel(settings.mock_latency_ms, settings.mock_cpu_ms)


__all__ = ["Model", "instrumented", "load_model"]
