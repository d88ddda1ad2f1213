"""REDIS_URL names the topology: its forms, and the errors that name the setting."""

import pytest
from pydantic import ValidationError

from service.redis_url import RedisUrlError, parse_redis_url
from service.settings import Settings


def test_a_single_redis_keeps_redis_py_s_own_url() -> None:
    for url in ("redis://h:6380/2", "rediss://u:p@h:6380/0", "unix:///tmp/r.sock"):
        target = parse_redis_url(url)
        assert (target.mode, target.url) == ("single", url)
    assert parse_redis_url("rediss://h").tls


def test_sentinel_lists_its_sentinels_and_names_the_primary() -> None:
    target = parse_redis_url("redis+sentinel://app:s%40cret@s1:26379,s2,[::1]:26380/main/3")
    assert target.mode == "sentinel"
    assert target.hosts == (("s1", 26379), ("s2", 26379), ("::1", 26380))
    assert (target.primary_name, target.db) == ("main", 3)
    assert (target.username, target.password) == ("app", "s@cret")
    assert not target.tls


def test_cluster_lists_its_seeds_with_tls_and_options() -> None:
    target = parse_redis_url(
        "rediss+cluster://:pw@10.0.0.1:7000,10.0.0.2:7001?ssl_ca_certs=/ca.pem&socket_timeout=3"
    )
    assert target.mode == "cluster"
    assert target.hosts == (("10.0.0.1", 7000), ("10.0.0.2", 7001))
    assert target.connection_kwargs() == {
        "username": None,
        "password": "pw",
        "ssl": True,
        "ssl_ca_certs": "/ca.pem",
        "socket_timeout": 3.0,
    }


@pytest.mark.parametrize(
    ("url", "fault"),
    [
        ("http://h:6379", "must start with one of"),
        ("redis+sentinel://s1:26379", "must name the primary"),
        ("redis+sentinel://s1:26379/main/x", "db number"),
        ("redis+cluster://", "names no host:port"),
        ("redis+cluster://h:70000", "no valid port"),
        ("redis+cluster://h:7000/0", "takes no path"),
        ("redis+cluster://h:7000?socket_timeout=soon", "not a number"),
    ],
)
def test_a_malformed_url_is_refused_naming_the_setting(url: str, fault: str) -> None:
    with pytest.raises(RedisUrlError, match=fault) as raised:
        parse_redis_url(url)
    assert "REDIS_URL" in str(raised.value)
    with pytest.raises(ValidationError, match="REDIS_URL"):
        Settings(redis_url=url)


def test_shards_default_to_the_cluster_s_listed_nodes() -> None:
    assert Settings(redis_url="redis://h").effective_stream_shards == 1
    assert Settings(redis_url="redis+sentinel://s/m").effective_stream_shards == 1
    cluster = "redis+cluster://a:1,b:2,c:3"
    assert Settings(redis_url=cluster).effective_stream_shards == 3
    assert Settings(redis_url=cluster, stream_shards=8).effective_stream_shards == 8


def test_settings_a_cluster_cannot_take() -> None:
    cluster = "redis+cluster://a:1"
    with pytest.raises(ValidationError, match="needs a single Redis"):
        Settings(redis_url=cluster, async_backend="background")
    with pytest.raises(ValidationError, match="REDIS_AUTOPIPELINE"):
        Settings(redis_url=cluster, redis_wait_replicas=1, redis_autopipeline=False)
