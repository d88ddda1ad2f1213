"""The fast paths answer exactly what the FastAPI routes answer, and really bypass them."""

import uuid
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from service.fast_paths import FastPaths
from service.handlers import PredictionHandlers
from service.schemas import prediction_models
from tests.apps import in_app, services_of

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


@pytest.mark.parametrize(("method", "path", "body", "headers"), REQUESTS)
def test_fast_and_framework_paths_answer_alike(
    make_client: Callable[..., TestClient],
    method: str,
    path: str,
    body: bytes,
    headers: dict[str, str],
) -> None:
    # Apart in Redis, so that one's idempotency key is not the other's replay.
    fast = make_client(worker_concurrency=0, fast_paths=True, max_body_bytes=1000, key_prefix="f:")
    framework = make_client(
        worker_concurrency=0, fast_paths=False, max_body_bytes=1000, key_prefix="r:"
    )
    assert answer(fast, method, path, body, headers) == answer(
        framework, method, path, body, headers
    )


async def _forbidden(scope: Scope, receive: Receive, send: Send) -> None:
    raise AssertionError(f"FastAPI was asked for {scope['method']} {scope['path']}")


async def call(app: FastPaths, method: str, path: str, body: bytes) -> list[Message]:
    sent: list[Message] = []
    scope: Scope = {
        "type": "http",
        "method": method,
        "path": path,
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json")],
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
    services = services_of(client)
    request_model, _ = prediction_models(
        services.model.input_type, services.model.example_input, services.settings.max_input_chars
    )
    route = Route("/", _forbidden)  # only a label here
    state = client.app.state  # type: ignore[attr-defined]
    handlers = PredictionHandlers(request_model, services.settings)
    fast = FastPaths(_forbidden, handlers, state, route, route)
    sent = in_app(client, lambda: call(fast, "POST", "/predict", BODY))
    assert sent[0]["status"] == 200
    assert orjson.loads(sent[1]["body"])["input"] == "some_input_data"
    sent = in_app(client, lambda: call(fast, "GET", f"/predict/{UNKNOWN}", b""))
    assert sent[0]["status"] == 404
    with pytest.raises(AssertionError, match="FastAPI was asked"):
        in_app(client, lambda: call(fast, "GET", "/predict/not-a-uuid", b""))
