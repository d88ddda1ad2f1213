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

from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute
from starlette.types import Receive, Scope, Send

from service.api.handlers import PredictionHandlers
from service.api.headers import pick_headers
from service.api.middleware.api_keys import KEY_ID_SCOPE
from service.api.middleware.body_limit import length_refusal, refuse, too_large
from service.api.middleware.metrics import RequestRecorder
from service.api.middleware.security_headers import API_HEADERS
from service.api.responses import (
    CONTENT_TYPE,
    internal_error,
    json_response,
    storage_unavailable,
)
from service.api.services import Services
from service.metrics import BUFFER
from service.storage.errors import STORAGE_ERRORS

logger = logging.getLogger(__name__)

_PREFIX = "/predict/"
# The ASGI extension of the service's HTTP protocol (service/server/http_protocol.py): headers
# handed over already encoded, and checked by the server once.
PREENCODED_HEADERS = "service.preencoded_headers"
JSON_HEADER_LINES = b"".join(b"%s: %s\r\n" % header for header in (CONTENT_TYPE, *API_HEADERS))
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
        # The recorder's children by (is a poll, status): the fast paths know their route.
        self._recorded: dict[tuple[bool, int], tuple[Any, Any]] = {}

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
        """Answer a request `matches` accepted: one coroutine from the scope to the last byte
        (each further layer of awaiting costs about as much as a header)."""
        inline = self.inline_middleware
        services = self.services
        if services is None:
            raise RuntimeError("the fast paths answer only between the app's start and stop")
        start = perf_counter()
        if inline:
            # What HTTPMetrics, SecurityHeaders and BodySizeLimit do, in line.
            BUFFER.in_flight += 1
        status = 500
        prediction_id: UUID | None = scope.get(_ID)
        routed = False
        try:
            headers = pick_headers(scope["headers"]) if prediction_id is None else {}
            if inline and prediction_id is None:
                lengths = headers.get("content-length")
                if lengths is not None and not (
                    lengths[0].isascii()
                    and lengths[0].isdigit()
                    and int(lengths[0]) <= self.max_body_bytes
                ):
                    refusal = length_refusal(lengths[0], self.max_body_bytes)
                    if refusal is not None:
                        # Refused before routing, as the body-size middleware refuses it.
                        status = refusal[0]
                        await refuse(send, *refusal, API_HEADERS)
                        return
            # The route label, as the router sets it once a request reaches a route.
            scope["route"] = self.predict_route if prediction_id is None else self.poll_route
            routed = True
            owner: str | None = scope.get(KEY_ID_SCOPE)
            try:
                if prediction_id is None:
                    limit = self.max_body_bytes if inline else None
                    message: Any = await receive()
                    body: bytes = message.get("body", b"")
                    if message.get("more_body", False) or (limit is not None and len(body) > limit):
                        body = await _read_rest(receive, body, limit)
                    response = await self.handlers.predict(services, headers, body, "", owner)
                else:
                    response = await self.handlers.poll(services, prediction_id, None, owner)
            except HTTPException as exc:  # the body limit, raised while reading
                response = json_response(exc.status_code, {"error": exc.detail}, exc.headers)
            except STORAGE_ERRORS as exc:
                logger.warning("event=redis_error error=%s", type(exc).__name__)
                response = storage_unavailable(self.handlers.settings.retry_after_s)
            except Exception:
                # A bug, answered as the app's own handler answers it: the traceback to the
                # log, a generic 500 to the client.
                logger.exception("event=unhandled_error path=%s", scope["path"])
                response = internal_error()
            status = response.status_code
            if not inline:
                await response(scope, receive, send)
                return
            if PREENCODED_HEADERS in scope.get("extensions", ()):
                start_message = {
                    "type": "http.response.start",
                    "status": status,
                    "headers": response.own_headers,
                    PREENCODED_HEADERS: JSON_HEADER_LINES,
                }
            else:
                start_message = {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [*response.raw_headers, *API_HEADERS],
                }
            await send(start_message)
            await send({"type": "http.response.body", "body": response.body})
        finally:
            if inline:
                BUFFER.in_flight -= 1
                recorder = self.recorder
                if recorder is not None and not routed:
                    recorder.record(scope, status, perf_counter() - start)
                elif recorder is not None:
                    children = self._recorded.get((prediction_id is not None, status))
                    if children is None:
                        children = self._children(prediction_id is not None, status)
                    BUFFER.count_and_observe(children[0], children[1], perf_counter() - start)
        if response.background is not None:
            await response.background()

    def _children(self, poll: bool, status: int) -> tuple[Any, Any]:
        assert self.recorder is not None
        route = self.poll_route if poll else self.predict_route
        method = "GET" if poll else "POST"
        children = self.recorder.children(getattr(route, "path_format", ""), method, status)
        self._recorded[poll, status] = children
        return children


def _uuid(text: str) -> UUID | None:
    # Only the canonical form; FastAPI parses (and documents) the others.
    if len(text) != 36:
        return None
    try:
        return UUID(text)
    except ValueError:
        return None


async def _read_rest(receive: Receive, first: bytes, max_bytes: int | None) -> bytes:
    """The body whose first message was `first`, when it did not come whole in that one."""
    chunks = [first]
    received = len(first)
    while True:
        if max_bytes is not None and received > max_bytes:
            raise too_large(max_bytes)
        message: Any = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        chunks.append(chunk)
        received += len(chunk)
        if not message.get("more_body", False):
            if max_bytes is not None and received > max_bytes:
                raise too_large(max_bytes)
            break
    return b"".join(chunks)
