"""POST /predict and GET /predict/{id} without FastAPI's per-request machinery.

The app (`service.api.app.PredictionAPI`) hands a request these recognise exactly to them before
FastAPI's own layers (its error, telemetry and body-limit middleware, route matching, the
Request object, dependency solving), which cost more than the work of a sync prediction or a
poll. The handlers are the very ones the FastAPI routes call, and those routes still make the
OpenAPI document; anything else (a long-poll, an id that is not a canonical UUID) goes to
FastAPI, which validates and documents it.

The service's own middleware still applies, in one of two ways:
- With keys, a rate limit or CORS on, the app wraps these in the same middleware list it
  gives FastAPI.
- Otherwise (`inline_middleware=True`), these do the work of the three middleware that are always on
  (metrics, security headers, body limit) themselves, with the same functions, and send the
  response directly: each ASGI layer wraps `send` or `receive` in a closure per request, and
  the layers cost a sync prediction more than its own work.
"""

import logging
from time import perf_counter
from typing import Any
from uuid import UUID

from redis.exceptions import RedisError
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute
from starlette.types import Receive, Scope, Send

from service.api.handlers import PredictionHandlers
from service.api.middleware.api_keys import key_id_of
from service.api.middleware.body_limit import declared_length_refusal, refuse, too_large
from service.api.middleware.metrics import RequestRecorder
from service.api.middleware.security_headers import API_HEADERS
from service.api.responses import (
    JSONBytesResponse,
    internal_error,
    json_response,
    storage_unavailable,
)
from service.api.services import Services
from service.metrics import BUFFER

logger = logging.getLogger(__name__)

_PREFIX = "/predict/"
# Where `matches` leaves the parsed id of a poll for the call that answers it.
_ID = "prediction.id"


class FastPaths:
    def __init__(
        self,
        handlers: PredictionHandlers,
        predict_route: BaseRoute,
        poll_route: BaseRoute,
        *,
        inline_middleware: bool = False,
    ) -> None:
        self.handlers = handlers
        # Set by the app's lifespan, with app.state.services: Starlette's State finds its
        # attributes only after a failed lookup, an exception raised on every request.
        self.services: Services | None = None
        self.predict_route = predict_route
        self.poll_route = poll_route
        self.inline_middleware = inline_middleware
        self.max_body_bytes = handlers.settings.max_body_bytes
        self.recorder = RequestRecorder() if handlers.settings.metrics_enabled else None

    def matches(self, scope: Scope) -> bool:
        """Whether this answers the HTTP request."""
        if scope.get("root_path"):
            return False
        path, method = scope["path"], scope["method"]
        if method == "POST" and path == "/predict":
            return True
        if method == "GET" and path.startswith(_PREFIX) and not scope["query_string"]:
            prediction_id = _uuid(path[len(_PREFIX) :])
            if prediction_id is not None:
                scope[_ID] = prediction_id
                return True
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer a request `matches` accepted."""
        if not self.inline_middleware:
            response = await self._answer(scope, receive, None)
            await response(scope, receive, send)
            return
        # What HTTPMetrics, SecurityHeaders and BodySizeLimit do, in line.
        start = perf_counter()
        recorder = self.recorder
        BUFFER.in_flight += 1
        status = 500
        try:
            refusal = declared_length_refusal(scope["headers"], self.max_body_bytes)
            if refusal is not None:
                status = refusal[0]
                await refuse(send, *refusal, API_HEADERS)
                return
            response = await self._answer(scope, receive, self.max_body_bytes)
            status = response.status_code
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [*response.raw_headers, *API_HEADERS],
                }
            )
            await send({"type": "http.response.body", "body": response.body})
        finally:
            BUFFER.in_flight -= 1
            if recorder is not None:
                recorder.record(scope, status, perf_counter() - start)
        if response.background is not None:
            await response.background()

    async def _answer(
        self, scope: Scope, receive: Receive, max_body_bytes: int | None
    ) -> JSONBytesResponse:
        services, owner = self.services, key_id_of(scope)
        if services is None:
            raise RuntimeError("the fast paths answer only between the app's start and stop")
        prediction_id: UUID | None = scope.get(_ID)
        # The route label, as the router sets it once a request reaches a route.
        scope["route"] = self.predict_route if prediction_id is None else self.poll_route
        try:
            if prediction_id is None:
                body = await _read_body(receive, max_body_bytes)
                return await self.handlers.predict(services, scope["headers"], body, "", owner)
            return await self.handlers.poll(services, prediction_id, None, owner)
        except HTTPException as exc:  # the body limit, raised while reading
            return json_response(exc.status_code, {"error": exc.detail}, exc.headers)
        except RedisError as exc:
            logger.warning("event=redis_error error=%s", type(exc).__name__)
            return storage_unavailable(self.handlers.settings.retry_after_s)
        except Exception:
            # A bug, answered as the app's own handler answers it: the traceback to the log,
            # a generic 500 to the client.
            logger.exception("event=unhandled_error path=%s", scope["path"])
            return internal_error()


def _uuid(text: str) -> UUID | None:
    # Only the canonical form; FastAPI parses (and documents) the others.
    if len(text) != 36:
        return None
    try:
        return UUID(text)
    except ValueError:
        return None


async def _read_body(receive: Receive, max_bytes: int | None) -> bytes:
    chunks: list[bytes] = []
    received = 0
    while True:
        message: Any = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        chunks.append(chunk)
        received += len(chunk)
        if max_bytes is not None and received > max_bytes:
            raise too_large(max_bytes)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)
