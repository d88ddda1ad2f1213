import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from service.backends import AsyncBackend, BackgroundBackend, StreamBackend
from service.connections import create_redis
from service.deps import Services
from service.fast_paths import FastPaths
from service.handlers import PredictionHandlers
from service.http_metrics import HTTPMetrics
from service.instrumentation import instrument
from service.jobs import JobStore
from service.keys import Keys
from service.limits import BodySizeLimit
from service.metrics import BUFFER, flush_periodically
from service.models import Model, instrumented, load_model
from service.notifier import Notifier
from service.responses import (
    internal_error,
    json_response,
    storage_unavailable,
    validation_error_body,
)
from service.routes import health
from service.routes.predict import predict_router
from service.schemas import prediction_models
from service.security import add_security_middleware, document_security
from service.security_headers import API_HEADERS, SecurityHeaders
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
    return StreamBackend(
        store,
        settings.max_queue,
        consumers,
        settings.graceful_timeout_s,
        settings.queue_sample_s if settings.metrics_enabled else 0,
    )


class PredictionAPI(FastAPI):
    """FastAPI, with POST /predict and GET /predict/{id} answered by the fast paths.

    A request the fast paths recognise goes through the app's own middleware (the same list
    FastAPI's stack is built from, so metrics, security headers, keys, rate limit and body
    limit apply alike) straight to them, and never through FastAPI's per-request layers;
    every other request, and every other scope, is FastAPI's.
    """

    fast_paths: FastPaths | None = None
    _fast_stack: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fast = self.fast_paths
        if fast is not None and scope["type"] == "http" and fast.matches(scope):
            stack = self._fast_stack
            if stack is None:
                # Built on first use, as Starlette builds its own stack: after every
                # add_middleware call. At the edge, the fast paths do the middleware's work.
                stack = fast
                if fast.edge:
                    _check_edge_duties(self.user_middleware)
                else:
                    for cls, args, kwargs in reversed(self.user_middleware):
                        stack = cls(stack, *args, **kwargs)
                self._fast_stack = stack
            scope["app"] = self
            await stack(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def _check_edge_duties(middleware: list[Middleware]) -> None:
    """At the edge, the fast paths answer without the middleware: only for those whose work
    they do."""
    others = {m.cls for m in middleware} - {HTTPMetrics, SecurityHeaders, BodySizeLimit}
    if others:
        raise RuntimeError(f"the fast paths would skip middleware {others}")


def _route(router: APIRouter, path: str, method: str) -> APIRoute:
    return next(
        route
        for route in router.routes
        if isinstance(route, APIRoute) and route.path == path and method in (route.methods or ())
    )


def create_app(settings: Settings | None = None, model: Model | None = None) -> FastAPI:
    """The app; `model` replaces the one MODEL names (tests pass their own)."""
    settings = settings or Settings()
    _configure_logging(settings)
    model = instrumented(model, settings) if model else load_model(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Blocking reads and the subscription hold a connection each: they use the pool.
        # Request paths go through the auto-pipeline when it is on.
        redis = create_redis(settings)
        fast = create_redis(settings, autopipelined=True) if settings.redis_autopipeline else redis
        keys = Keys(settings.key_prefix)
        store = JobStore(
            fast, keys, settings.result_ttl_s, stream_maxlen=settings.effective_stream_maxlen
        )
        notifier = Notifier(redis, keys.done_channel)
        backend = create_backend(settings, redis, store, keys, model)
        app.state.services = services = Services(settings, redis, store, model, backend, notifier)
        if isinstance(app, PredictionAPI) and app.fast_paths is not None:
            app.fast_paths.services = services
        notifier.start()
        backend.start()
        flusher = asyncio.create_task(flush_periodically()) if settings.metrics_enabled else None
        # Everything made so far lives as long as the process: out of the collector's sight,
        # its full collections no longer walk the framework, the model and the app.
        gc.freeze()
        try:
            yield
        finally:
            await backend.close()
            await notifier.close()
            await redis.aclose()
            if fast is not redis:
                await fast.aclose()
            if flusher is not None:
                flusher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await flusher
                BUFFER.flush()  # what the consumers recorded as they finished

    app = PredictionAPI(
        # FastAPI's own OpenTelemetry hooks cost every request; the service's metrics are
        # Prometheus's (METRICS_ENABLED).
        telemetry={"tracing": False, "metrics": False, "logs": False},
        title="Prediction service",
        version="0.1.0",
        summary=f"Predictions from the `{model.name}` model, synchronously or through Redis.",
        lifespan=lifespan,
    )
    request_model, result_model = prediction_models(
        model.input_type, model.example_input, settings.max_input_chars
    )
    handlers = PredictionHandlers(request_model, settings)
    predictions = predict_router(handlers, result_model, settings)
    app.include_router(predictions)
    app.include_router(health.router)
    if settings.fast_paths:
        app.fast_paths = FastPaths(
            handlers,
            _route(predictions, "/predict", "POST"),
            _route(predictions, "/predict/{prediction_id}", "GET"),
            # Keys, the rate limit and CORS are middleware the fast paths go through; without
            # them, the fast paths do the work of the middleware that is always on.
            edge=not (
                settings.api_key_list
                or settings.rate_limit_per_s is not None
                or settings.cors_origin_list
            ),
        )
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    add_security_middleware(app, settings)
    document_security(app, settings)
    if settings.metrics_enabled:
        instrument(app)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        return json_response(422, validation_error_body(list(exc.errors())))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        return json_response(exc.status_code, {"error": exc.detail}, exc.headers)

    @app.exception_handler(RedisError)
    async def redis_unavailable(request: Request, exc: RedisError) -> Response:
        logger.warning("event=redis_error error=%s", type(exc).__name__)
        return storage_unavailable(settings.retry_after_s)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> Response:
        # A bug: the traceback goes to the server's log (Starlette re-raises it after this),
        # never to the client. This runs outside the middleware, so it brings its headers.
        return internal_error({name.decode(): value.decode() for name, value in API_HEADERS})

    return app
