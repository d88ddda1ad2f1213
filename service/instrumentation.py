from fastapi import FastAPI

from service.http_metrics import HTTPMetrics
from service.metrics import record_process_start
from service.routes import metrics


def instrument(app: FastAPI) -> None:
    """Prometheus metrics for the app: request metrics, `GET /metrics`, this process's start.

    Call it after the other middleware is added, so that it is the outermost and also sees
    the requests they answer themselves (an early 413).
    """
    app.add_middleware(HTTPMetrics)
    app.include_router(metrics.router)
    record_process_start()
