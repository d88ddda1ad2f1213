"""POST /predict and GET /predict/{id} without FastAPI's per-request machinery.

Pure ASGI, innermost of the middleware (so body limits, metrics and the other middleware
still apply) and in front of the router: it skips route matching, the Request object and
dependency solving, which cost more than the work of a sync prediction or a poll. The
handlers are the very ones the FastAPI routes call, and those routes still make the OpenAPI
document; any request this does not recognise exactly (a long-poll, an id that is not a UUID)
goes on to FastAPI, which validates and documents it.
"""

from typing import Any
from uuid import UUID

from redis.exceptions import RedisError
from starlette.datastructures import Headers, State
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from service.auth import key_id_of
from service.handlers import PredictionHandlers
from service.responses import json_response, storage_unavailable

_PREFIX = "/predict/"


class FastPaths:
    def __init__(
        self,
        app: ASGIApp,
        handlers: PredictionHandlers,
        state: State,
        predict_route: BaseRoute,
        poll_route: BaseRoute,
    ) -> None:
        self.app = app
        self.handlers = handlers
        self.state = state
        self.predict_route = predict_route
        self.poll_route = poll_route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            path, method = scope["path"], scope["method"]
            if method == "POST" and path == "/predict":
                await self._predict(scope, receive, send)
                return
            if method == "GET" and path.startswith(_PREFIX) and not scope["query_string"]:
                prediction_id = _uuid(path[len(_PREFIX) :])
                if prediction_id is not None:
                    await self._poll(scope, prediction_id, receive, send)
                    return
        await self.app(scope, receive, send)

    async def _predict(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = self.predict_route  # the route label, as the router would set it
        try:
            body = await _read_body(receive)
            response = await self.handlers.predict(
                self.state.services, Headers(scope=scope), body, "", key_id_of(scope)
            )
        except HTTPException as exc:  # the body limit, raised while reading
            response = json_response(exc.status_code, {"error": exc.detail}, exc.headers)
        except RedisError:
            response = storage_unavailable(self.handlers.settings.retry_after_s)
        await response(scope, receive, send)

    async def _poll(self, scope: Scope, prediction_id: UUID, receive: Receive, send: Send) -> None:
        scope["route"] = self.poll_route
        try:
            response = await self.handlers.poll(
                self.state.services, prediction_id, None, key_id_of(scope)
            )
        except RedisError:
            response = storage_unavailable(self.handlers.settings.retry_after_s)
        await response(scope, receive, send)


def _uuid(text: str) -> UUID | None:
    # Only the canonical form; FastAPI parses (and documents) the others.
    if len(text) != 36:
        return None
    try:
        return UUID(text)
    except ValueError:
        return None


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message: Any = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)
