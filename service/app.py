import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException

from service.backends import AsyncBackend, BackgroundBackend, StreamBackend
from service.connections import create_redis
from service.deps import Services
from service.jobs import JobStore
from service.keys import Keys
from service.limits import BodySizeLimit
from service.models import Model, load_model
from service.notifier import Notifier
from service.responses import json_response, validation_error_body
from service.routes import health
from service.routes.predict import predict_router
from service.schemas import INTERNAL_ERROR, STORAGE_UNAVAILABLE
from service.security import add_security_middleware, document_security
from service.security_headers import API_HEADERS
from service.settings import Settings
from service.worker import build_consumers

logger = logging.getLogger(__name__)


def _configure_logging(settings: Settings) -> None:
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(
            format="%(asctime)s level=%(levelname)s logger=%(name)s %(message)s",
            level=settings.log_level.upper(),
        )


def create_backend(
    settings: Settings, redis: Redis, store: JobStore, keys: Keys, model: Model
) -> AsyncBackend:
    if settings.async_backend == "background":
        return BackgroundBackend(store, model, log_inputs=settings.log_inputs)
    consumers = None
    if settings.worker_concurrency > 0:
        consumers = build_consumers(
            redis, store, keys, model, settings.worker_config, settings.worker_concurrency
        )
    return StreamBackend(store, settings.max_queue, consumers, settings.graceful_timeout_s)


def create_app(settings: Settings | None = None, model: Model | None = None) -> FastAPI:
    """The app; `model` replaces the one MODEL names (tests pass their own)."""
    settings = settings or Settings()
    _configure_logging(settings)
    model = model or load_model(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redis = create_redis(settings)
        keys = Keys(settings.key_prefix)
        store = JobStore(
            redis, keys, settings.result_ttl_s, stream_maxlen=settings.effective_stream_maxlen
        )
        notifier = Notifier(redis, keys.done_channel)
        backend = create_backend(settings, redis, store, keys, model)
        app.state.services = Services(settings, redis, store, model, backend, notifier)
        notifier.start()
        backend.start()
        try:
            yield
        finally:
            await backend.close()
            await notifier.close()
            await redis.aclose()

    app = FastAPI(
        title="Prediction service",
        version="0.1.0",
        summary=f"Predictions from the `{model.name}` model, synchronously or through Redis.",
        lifespan=lifespan,
    )
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    add_security_middleware(app, settings)
    app.include_router(predict_router(model, settings))
    app.include_router(health.router)
    document_security(app, settings)

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

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> Response:
        # A bug: the traceback goes to the server's log (Starlette re-raises it after this),
        # never to the client. This runs outside the middleware, so it brings its headers.
        headers = {name.decode(): value.decode() for name, value in API_HEADERS}
        return json_response(500, {"error": INTERNAL_ERROR}, headers)

    return app
