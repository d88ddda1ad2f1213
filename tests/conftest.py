from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.models.base import Model
from service.models.iris import train
from service.server.embedded_redis import EmbeddedRedis
from service.server.process import free_port
from service.settings import Settings


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """One real redis-server for the session, started by the tests on a free port."""
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), port=free_port(), appendonly=False)
    with server:
        yield server


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> str:
    """The session's Redis, emptied: it is ours, started above, so flushing it is safe."""
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushall()
    return redis_server.url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(redis_url) as client:
        yield client


@pytest.fixture
def make_client(redis_url: str) -> Iterator[Callable[..., TestClient]]:
    """An in-process client of an app built with the given settings (lifespan included)."""
    clients: list[TestClient] = []

    def make(with_model: Model | None = None, **overrides: Any) -> TestClient:
        # Consumers block at most 50 ms in a read, so that apps shut down quickly; no queue
        # sampling, so that the Redis commands a test sees are the ones it caused.
        defaults = {"redis_url": redis_url, "worker_block_ms": 50, "queue_sample_s": 0}
        settings = Settings(**{**defaults, **overrides})
        client = TestClient(create_app(settings, with_model))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    """An app without in-process consumers: every Redis command seen is a request's own, and
    async jobs stay queued."""
    return make_client(worker_concurrency=0)


@pytest.fixture(scope="session")
def iris_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:

    path = tmp_path_factory.mktemp("model") / "iris.joblib"
    train(path)
    return path
