from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from redis.cluster import RedisCluster

from service.api.app import create_app
from service.models.base import Model
from service.models.iris import train
from service.server.embedded_redis import EmbeddedRedis
from service.server.process import free_port
from service.server.redis_topology import LocalCluster
from service.settings import Settings
from service.storage.keys import Keys
from tests.support.topologies import cluster_client, require_redis_7


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """One real redis-server for the session, started by the tests on a free port."""
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), port=free_port(), appendonly=False)
    with server:
        yield server


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "both_topologies: run the test on a single Redis and on a 3-primary Redis Cluster",
    )
    config.addinivalue_line(
        "markers", "single_topology: in a both_topologies module, a test for a single Redis only"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test marked both_topologies runs twice: the same test, not a copy, on each (unless
    it is marked single_topology itself: what a Cluster refuses to run)."""
    definition = metafunc.definition
    if (
        "topology" in metafunc.fixturenames
        and definition.get_closest_marker("both_topologies")
        and not definition.get_closest_marker("single_topology")
    ):
        metafunc.parametrize("topology", ["single", "cluster"], scope="session")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The Cluster variant of a test of ASYNC_BACKEND=background is not a test: the settings
    refuse that backend on a Cluster (tests/storage/test_redis_url.py shows it). Deselected,
    so that nothing is skipped."""
    refused = [
        item
        for item in items
        if (params := getattr(getattr(item, "callspec", None), "params", {})).get("topology")
        == "cluster"
        and params.get("backend") == "background"
    ]
    if refused:
        config.hook.pytest_deselected(items=refused)
        items[:] = [item for item in items if item not in refused]


@pytest.fixture(scope="session")
def topology() -> str:
    """A single Redis, unless the test is marked both_topologies (then each in turn)."""
    return "single"


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """One real 3-primary, 3-replica Redis Cluster for the session, started by the tests."""
    require_redis_7()
    with LocalCluster(tmp_path_factory.mktemp("cluster")) as cluster:
        yield cluster


@pytest.fixture
def redis_url(topology: str, request: pytest.FixtureRequest) -> str:
    """The session's Redis (or Cluster), emptied: it is ours, started above, so flushing it
    is safe."""
    if topology == "cluster":
        cluster: LocalCluster = request.getfixturevalue("redis_cluster")
        with cluster_client(cluster.url) as client:
            client.flushall(target_nodes=RedisCluster.PRIMARIES)
        return cluster.url
    server: EmbeddedRedis = request.getfixturevalue("redis_server")
    with redis.Redis.from_url(server.url) as single:
        single.flushall()
    return server.url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A client of the test's Redis; on a Cluster, a RedisCluster (it takes the same calls)."""
    if redis_url.startswith("redis+cluster://"):
        with cluster_client(redis_url) as client:
            yield client
        return
    with redis.Redis.from_url(redis_url) as single:
        yield single


@pytest.fixture
def keys(topology: str) -> Keys:
    """The names the service uses on the test's topology (three shards on the Cluster)."""
    cluster = topology == "cluster"
    return Keys("pred:", shards=3 if cluster else 1, tagged=cluster)


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
