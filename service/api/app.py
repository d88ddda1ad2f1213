import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from service.api.fast_paths import FastPaths
from service.api.handlers import PredictionHandlers
from service.api.middleware.body_limit import BodySizeLimit
from service.api.middleware.metrics import HTTPMetrics
from service.api.middleware.security_headers import API_HEADERS, SecurityHeaders
from service.api.middleware.stack import add_security_middleware
from service.api.openapi import document_security
from service.api.responses import (
    internal_error,
    json_response,
    storage_unavailable,
    validation_error_body,
)
from service.api.routes import health, metrics
from service.api.routes.events import events_router
from service.api.routes.predict import predict_router
from service.api.schemas import batch_models, prediction_models
from service.api.services import Services
from service.jobs.runtime import JobRuntime
from service.metrics import BUFFER, flush_periodically, record_process_start
from service.models.base import Model
from service.models.loading import instrumented, load_model
from service.settings import Settings
from service.storage.errors import STORAGE_ERRORS

logger = logging.getLogger(__name__)


def _configure_logging(settings: Settings) -> None:
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(
            format="%(asctime)s level=%(levelname)s logger=%(name)s %(message)s",
            level=settings.log_level.upper(),
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
                # add_middleware call. With the middleware in line, the fast paths do its work.
                stack = fast
                if fast.inline_middleware:
                    _check_inlined_middleware(self.user_middleware)
                else:
                    for cls, args, kwargs in reversed(self.user_middleware):
                        stack = cls(stack, *args, **kwargs)
                self._fast_stack = stack
            scope["app"] = self
            await stack(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def _check_inlined_middleware(middleware: list[Middleware]) -> None:
    """With the middleware in line, the fast paths answer without it: only for the middleware
    whose work they do."""
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
        jobs = JobRuntime(settings, model, consumers=settings.worker_concurrency)
        app.state.services = services = Services(
            settings, jobs.redis, jobs.store, model, jobs.backend, jobs.notifier
        )
        if isinstance(app, PredictionAPI) and app.fast_paths is not None:
            app.fast_paths.services = services
        jobs.start()
        flusher = asyncio.create_task(flush_periodically()) if settings.metrics_enabled else None
        # Everything made so far lives as long as the process: out of the collector's sight,
        # its full collections no longer walk the framework, the model and the app.
        gc.freeze()
        try:
            yield
        finally:
            await jobs.close()
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
    batch_model, batch_result_model = batch_models(
        model.input_type,
        model.example_input,
        settings.max_input_chars,
        settings.batch_max_inputs,
    )
    handlers = PredictionHandlers(request_model, settings, batch_model)
    predictions = predict_router(handlers, result_model, settings, batch_result_model)
    app.include_router(predictions)
    app.include_router(events_router(settings))
    app.include_router(health.router)
    if settings.fast_paths:
        app.fast_paths = FastPaths(
            handlers,
            _route(predictions, "/predict", "POST"),
            _route(predictions, "/predict/{prediction_id}", "GET"),
            # Keys, the rate limit and CORS are middleware the fast paths go through; without
            # them, the fast paths do the work of the middleware that is always on.
            inline_middleware=not (
                settings.api_key_list
                or settings.rate_limit_per_s is not None
                or settings.cors_origin_list
            ),
        )
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    add_security_middleware(app, settings)
    document_security(app, settings)
    if settings.metrics_enabled:
        # Added last, so that it is the outermost and also sees the requests the other
        # middleware answers themselves (an early 413, a 401).
        app.add_middleware(HTTPMetrics)
        app.include_router(metrics.router)
        record_process_start()

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        return json_response(422, validation_error_body(list(exc.errors())))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        return json_response(exc.status_code, {"error": exc.detail}, exc.headers)

    async def redis_unavailable(request: Request, exc: Exception) -> Response:
        logger.warning("event=redis_error error=%s", type(exc).__name__)
        return storage_unavailable(settings.retry_after_s)

    for error in STORAGE_ERRORS:
        if error is not OSError:  # an OSError elsewhere is not Redis's: a 500, a bug
            app.add_exception_handler(error, redis_unavailable)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> Response:
        # A bug: the traceback goes to the server's log (Starlette re-raises it after this),
        # never to the client. This runs outside the middleware, so it brings its headers.
        return internal_error({name.decode(): value.decode() for name, value in API_HEADERS})

    return app
