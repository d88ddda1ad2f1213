import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException

from service.backends import BackgroundBackend
from service.connections import create_redis
from service.deps import Services
from service.instrumentation import instrument
from service.jobs import JobStore
from service.keys import Keys
from service.limits import BodySizeLimit
from service.models import load_model
from service.responses import json_response, validation_error_body
from service.routes import health
from service.routes.predict import predict_router
from service.schemas import STORAGE_UNAVAILABLE
from service.settings import Settings

logger = logging.getLogger(__name__)


def _configure_logging(settings: Settings) -> None:
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(
            format="%(asctime)s level=%(levelname)s logger=%(name)s %(message)s",
            level=settings.log_level.upper(),
        )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    _configure_logging(settings)
    model = load_model(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redis = create_redis(settings)
        store = JobStore(redis, Keys(settings.key_prefix), settings.result_ttl_s)
        backend = BackgroundBackend(store, model)
        app.state.services = Services(settings, redis, store, model, backend)
        try:
            yield
        finally:
            await backend.close()
            await redis.aclose()

    app = FastAPI(
        title="Prediction service",
        version="0.1.0",
        summary=f"Predictions from the `{model.name}` model, synchronously or through Redis.",
        lifespan=lifespan,
    )
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    if settings.metrics_enabled:
        instrument(app)
    app.include_router(predict_router(model))
    app.include_router(health.router)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        return json_response(422, validation_error_body(list(exc.errors())))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        return json_response(exc.status_code, {"error": exc.detail}, exc.headers)

    @app.exception_handler(RedisError)
    async def redis_unavailable(request: Request, exc: RedisError) -> Response:
        logger.warning("event=redis_error error=%s", type(exc).__name__)
        return json_response(
            503,
            {"error": STORAGE_UNAVAILABLE},
            {"Retry-After": str(settings.retry_after_s)},
        )

    return app
