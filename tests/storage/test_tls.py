"""The whole service over TLS on real processes, in every topology REDIS_URL names: a single
Redis (rediss://), Sentinel (rediss+sentinel://) and a Cluster (rediss+cluster://), each with a
password, listening in TLS only, with certificates from a test CA (trustme)."""

import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import pytest
import redis
import trustme
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.server.embedded_redis import EmbeddedRedis
from service.server.process import free_port
from service.server.redis_topology import LocalCluster, LocalSentinel, TlsConfig
from service.settings import Settings
from tests.support.apps import serves_every_async_path
from tests.support.topologies import require_redis_7

PASSWORD = "s3cret-tls-password"


@dataclass(frozen=True)
class Secured:
    """A topology up in TLS: the URL that trusts its CA, and every port it listens on."""

    url: str
    ports: tuple[int, ...]

    def trusting(self, ca_file: Path) -> str:
        """The same URL, trusting another CA."""
        base, _, _ = self.url.partition("?")
        return f"{base}?{urlencode({'ssl_ca_certs': str(ca_file)})}"


def _write_ca(ca: trustme.CA, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    ca.cert_pem.write_to_path(str(directory / "ca.pem"))
    return directory / "ca.pem"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsConfig:
    directory = tmp_path_factory.mktemp("certs")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    server.cert_chain_pems[0].write_to_path(str(directory / "server.pem"))
    server.private_key_pem.write_to_path(str(directory / "server.key"))
    return TlsConfig(directory / "server.pem", directory / "server.key", _write_ca(ca, directory))


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_ca(trustme.CA(), tmp_path_factory.mktemp("other-ca"))


@pytest.fixture(scope="module", params=["single", "sentinel", "cluster"])
def secured(
    request: pytest.FixtureRequest, tls: TlsConfig, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Secured]:
    directory = tmp_path_factory.mktemp(request.param)
    if request.param == "single":
        port = free_port()
        # On a unix socket in plaintext for EmbeddedRedis's own readiness check, in TLS only
        # on TCP; the password is set once it answers, as the check's PING sends none.
        server = EmbeddedRedis(
            directory, appendonly=False, extra_args=(*tls.server_arguments(port),)
        )
        assert server.unix_path is not None
        with server, redis.Redis(unix_socket_path=str(server.unix_path)) as admin:
            admin.config_set("requirepass", PASSWORD)
            yield Secured(f"rediss://:{PASSWORD}@127.0.0.1:{port}/0{tls.query()}", (port,))
        return
    require_redis_7()
    topology: LocalCluster | LocalSentinel
    if request.param == "sentinel":
        topology = LocalSentinel(directory, password=PASSWORD, tls=tls)
    else:
        topology = LocalCluster(directory, password=PASSWORD, tls=tls)
    with topology:
        ports = [node.port for node in topology.nodes]
        if isinstance(topology, LocalSentinel):
            ports += [sentinel.port for sentinel in topology.sentinels]
        yield Secured(topology.url, tuple(ports))


def test_the_whole_service_runs_over_tls(secured: Secured) -> None:
    settings = Settings(redis_url=secured.url, worker_block_ms=50, queue_sample_s=0)
    with TestClient(create_app(settings)) as client:
        # The long-poll is woken through the notifier's pub/sub (sharded on the Cluster).
        serves_every_async_path(client)


def _answers_in_plaintext(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=2.0) as plain:
        plain.sendall(b"PING\r\n")
        try:
            return plain.recv(64) != b""  # +PONG, or -NOAUTH: someone speaks RESP here
        except ConnectionResetError:  # the TLS handshake fails on the first bytes
            return False


def test_nothing_answers_in_plaintext(secured: Secured) -> None:
    assert not [port for port in secured.ports if _answers_in_plaintext(port)]


def test_a_server_signed_by_another_ca_is_a_503_not_a_500(secured: Secured, other_ca: Path) -> None:
    settings = Settings(redis_url=secured.trusting(other_ca), worker_concurrency=0)
    with TestClient(create_app(settings)) as client:
        asked = time.monotonic()
        assert client.get("/readyz").status_code == 503
        assert time.monotonic() - asked < 5, "the refusal was retried for seconds"
