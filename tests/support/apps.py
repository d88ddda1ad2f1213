"""Helpers for tests that drive an app in-process through Starlette's TestClient."""

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
