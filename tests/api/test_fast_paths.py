"""The fast paths answer exactly what the FastAPI routes answer, and really bypass them."""

import uuid
from collections.abc import Callable
from functools import partial
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.app import PredictionAPI
from tests.support.apps import in_app

BODY = b'{"input": "some_input_data"}'
UNKNOWN = str(uuid.uuid4())

REQUESTS: list[tuple[str, str, bytes, dict[str, str]]] = [
    ("POST", "/predict", BODY, {}),
    ("POST", "/predict", BODY, {"async_mode": "true"}),
    ("POST", "/predict", BODY, {"Async-Mode": "TRUE", "Idempotency-Key": "k1"}),
    ("POST", "/predict", b"not json", {}),
    ("POST", "/predict", b'{"input": 5}', {"async_mode": "true"}),
    ("POST", "/predict", BODY, {"async_mode": "maybe"}),
    ("POST", "/predict", b'{"input": "' + b"x" * 2000 + b'"}', {}),
    ("GET", f"/predict/{UNKNOWN}", b"", {}),
    ("GET", f"/predict/{UNKNOWN.replace('-', '')}", b"", {}),
    ("GET", "/predict/not-a-uuid", b"", {}),
    ("GET", f"/predict/{UNKNOWN}?wait=0.1", b"", {}),
]
# Values that differ from one call to the next by design.
VOLATILE = {"prediction_id", "result"}


def answer(
    client: TestClient, method: str, path: str, body: bytes, headers: dict[str, str]
) -> tuple[int, Any, set[str]]:
    response = client.request(method, path, content=body, headers=headers)
    payload = response.json()
    if isinstance(payload, dict):
        payload = {k: v for k, v in payload.items() if k not in VOLATILE}
    shown = {h for h in response.headers if h not in ("date", "location", "content-length")}
    return response.status_code, payload, shown


# At the edge (the default), the fast paths do the always-on middleware's work themselves;
# with API keys on, they sit behind the middleware, as FastAPI's routes do.
EDGE = {"api_keys": ""}
BEHIND_MIDDLEWARE = {"api_keys": "fast-paths-test-key-1"}


@pytest.mark.parametrize("security", [EDGE, BEHIND_MIDDLEWARE], ids=["edge", "behind-middleware"])
@pytest.mark.parametrize(("method", "path", "body", "headers"), REQUESTS)
def test_fast_and_framework_paths_answer_alike(
    make_client: Callable[..., TestClient],
    method: str,
    path: str,
    body: bytes,
    headers: dict[str, str],
    security: dict[str, str],
) -> None:
    common = {"worker_concurrency": 0, "max_body_bytes": 1000, **security}
    # Apart in Redis, so that one's idempotency key is not the other's replay.
    fast = make_client(fast_paths=True, key_prefix="f:", **common)
    framework = make_client(fast_paths=False, key_prefix="r:", **common)
    if security["api_keys"]:
        headers = {**headers, "Authorization": f"Bearer {security['api_keys']}"}
    assert answer(fast, method, path, body, headers) == answer(
        framework, method, path, body, headers
    )


@pytest.mark.parametrize(
    ("content_length", "status"), [("2000", 413), ("12x", 400)], ids=["over", "malformed"]
)
def test_a_declared_length_is_refused_alike_before_the_body(
    make_client: Callable[..., TestClient], content_length: str, status: int
) -> None:
    fast = make_client(worker_concurrency=0, fast_paths=True, max_body_bytes=1000)
    framework = make_client(worker_concurrency=0, fast_paths=False, max_body_bytes=1000)
    answers = [
        in_app(client, partial(call, client.app, "POST", "/predict", BODY, content_length))
        for client in (fast, framework)
    ]
    assert answers[0] == answers[1]
    assert answers[0][0]["status"] == status
    assert (b"connection", b"close") in answers[0][0]["headers"]
    assert (b"x-content-type-options", b"nosniff") in answers[0][0]["headers"]


async def _forbidden(scope: Scope, receive: Receive, send: Send) -> None:
    raise AssertionError(f"FastAPI was asked for {scope['method']} {scope['path']}")


async def call(
    app: ASGIApp, method: str, path: str, body: bytes, content_length: str | None = None
) -> list[Message]:
    sent: list[Message] = []
    headers = [(b"content-type", b"application/json")]
    if content_length is not None:
        headers.append((b"content-length", content_length.encode()))
    scope: Scope = {
        "type": "http",
        "method": method,
        "path": path,
        "root_path": "",
        "query_string": b"",
        "headers": headers,
    }

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def test_sync_predictions_and_polls_never_reach_fastapi(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(worker_concurrency=0)
    app = client.app
    assert isinstance(app, PredictionAPI)
    fastapi_stack = app.middleware_stack
    app.middleware_stack = _forbidden  # FastAPI's own stack, built at start-up
    try:
        sent = in_app(client, lambda: call(app, "POST", "/predict", BODY))
        assert sent[0]["status"] == 200
        assert orjson.loads(sent[1]["body"])["input"] == "some_input_data"
        sent = in_app(client, lambda: call(app, "GET", f"/predict/{UNKNOWN}", b""))
        assert sent[0]["status"] == 404
        with pytest.raises(AssertionError, match="FastAPI was asked"):
            in_app(client, lambda: call(app, "GET", "/predict/not-a-uuid", b""))
    finally:
        app.middleware_stack = fastapi_stack


def test_the_fast_paths_refuse_to_skip_middleware_they_do_not_do(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(worker_concurrency=0)
    app = client.app
    assert isinstance(app, PredictionAPI)
    app._fast_stack = None
    app.user_middleware.append(Middleware(GZipMiddleware))
    with pytest.raises(RuntimeError, match="would skip middleware"):
        in_app(client, lambda: call(app, "POST", "/predict", BODY))
