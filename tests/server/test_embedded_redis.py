import shutil
from pathlib import Path

import pytest
import redis

from service.server.embedded_redis import (
    EmbeddedRedis,
    RedisServerNotFoundError,
    bundled_redis_server,
    find_redis_server,
)
from service.server.process import free_port


def test_the_project_install_ships_a_redis_server() -> None:
    binary = bundled_redis_server()
    assert binary is not None
    assert binary.is_file()


def test_explicit_binary_wins_then_path_then_bundled(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = tmp_path / "redis-server"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    assert find_redis_server(fake) == fake
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_redis_server() == fake
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert find_redis_server() == bundled_redis_server()
    with pytest.raises(RedisServerNotFoundError):
        find_redis_server(tmp_path / "absent")


def test_unix_socket_by_default_and_data_survives_a_restart(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path, binary=bundled_redis_server())
    with server:
        assert server.url.startswith("unix://")
        with redis.Redis.from_url(server.url) as client:
            client.set("k", "v")
    assert not server.is_answering()
    with EmbeddedRedis(tmp_path) as again, redis.Redis.from_url(again.url) as client:
        assert client.get("k") == b"v"


def test_long_data_dirs_fall_back_to_a_loopback_port(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 120)
    server = EmbeddedRedis(deep)
    with server:
        assert server.url.startswith("redis://127.0.0.1:")
        assert server.is_answering()


def test_refuses_to_start_a_second_server_on_the_same_data(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path), pytest.raises(RuntimeError, match="already answers"):
        EmbeddedRedis(tmp_path).start()


def test_a_failed_start_says_why(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path, port=free_port(), extra_args=("--no-such-option", "1"))
    with pytest.raises(RuntimeError, match="redis-server exited"):
        server.start()


def test_binds_loopback_only_with_protected_mode(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path, port=free_port()) as server, redis.Redis.from_url(server.url) as c:
        assert c.config_get("bind")["bind"].split() == ["127.0.0.1"]
        assert c.config_get("protected-mode")["protected-mode"] == "yes"
        assert c.config_get("appendonly")["appendonly"] == "yes"


@pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="no redis-server on PATH to compare"
)
def test_path_binary_is_preferred_when_present() -> None:
    assert find_redis_server() == Path(shutil.which("redis-server") or "")
