"""Helpers for tests that drive an app in-process through Starlette's TestClient."""

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from fastapi.testclient import TestClient

from service.api.services import Services

T = TypeVar("T")


def in_app(client: TestClient, work: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine on the app's own event loop (where its Redis pool lives)."""
    assert client.portal is not None, "the client must be started"
    return client.portal.call(work)


def services_of(client: TestClient) -> Services:
    services: Services = client.app.state.services  # type: ignore[attr-defined]
    return services


class FailingModel:
    """A model whose every call raises, as a broken model or a poison input would."""

    name = "failing"
    version = "1"
    input_type = str
    example_input = "x"

    def __init__(self) -> None:
        self.calls = 0

    async def predict_batch(self, inputs: Sequence[Any]) -> list[str]:
        self.calls += 1
        raise RuntimeError("boom")


class RecordingModel:
    """A model that records every input it is given, per call, and answers `r:<input>`;
    while `hold` is set, a call waits (a job stays running until the test lets it go)."""

    name = "recording"
    version = "1"
    input_type = str
    example_input = "x"

    def __init__(self, fail_on: str | None = None) -> None:
        self.calls: list[list[Any]] = []
        self.hold = False
        self.fail_on = fail_on

    @property
    def seen(self) -> list[Any]:
        return [item for call in self.calls for item in call]

    async def predict_batch(self, inputs: Sequence[Any]) -> list[str]:
        self.calls.append(list(inputs))
        # Let go from the test's thread, where the app loop's asyncio.Event cannot be set.
        while self.hold:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        if self.fail_on is not None and self.fail_on in inputs:
            raise ValueError("a poison input")
        return [f"r:{item}" for item in inputs]


def serves_every_async_path(client: TestClient, idempotency_key: str | None = None) -> None:
    """Readiness, an async submit (with an Idempotency-Key and its replay when given), the
    long-poll that the notifier's pub/sub wakes, a poll, and `Prefer: wait`: each of the Redis
    paths of the API, through one started client."""
    assert client.get("/readyz").status_code == 200
    headers = {"async_mode": "true"}
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    accepted = client.post("/predict", json={"input": "x"}, headers=headers)
    assert accepted.status_code == 202, accepted.text
    location = accepted.headers["location"]
    assert client.get(f"{location}?wait=5").json()["status"] == "succeeded"  # long-poll
    assert client.get(location).status_code == 200  # poll
    if idempotency_key is not None:
        assert client.post("/predict", json={"input": "x"}, headers=headers).status_code == 202
    waited = client.post(
        "/predict", json={"input": "y"}, headers={"async_mode": "true", "Prefer": "wait=5"}
    )
    assert waited.status_code == 200, waited.text
