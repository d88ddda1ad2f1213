import os

import pytest
from pydantic import ValidationError

from service.settings import Settings


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PORT", "WEB_CONCURRENCY", "REDIS_URL", "MODEL", "MAX_BODY_BYTES", "RESULT_TTL_S"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.port == 8080
    assert settings.web_concurrency == os.cpu_count()
    assert settings.redis_url is None
    assert settings.model == "mock"
    assert settings.max_body_bytes == 1024 * 1024
    assert settings.result_ttl_s == 86400


def test_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "9000")
    monkeypatch.setenv("REDIS_URL", "unix:///tmp/redis.sock")
    monkeypatch.setenv("MOCK_LATENCY_MS", "12.5")
    settings = Settings()
    assert (settings.port, settings.redis_url, settings.mock_latency_ms) == (
        9000,
        "unix:///tmp/redis.sock",
        12.5,
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PORT", "0"),
        ("PORT", "eighty"),
        ("REDIS_URL", "http://localhost:6379"),
        ("MODEL", "gpt"),
        ("WEB_CONCURRENCY", "0"),
        ("KEY_PREFIX", "pred*"),
        ("ASYNC_BACKEND", "celery"),
    ],
)
def test_bad_values_fail_loudly(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=name.lower()):
        Settings()


@pytest.mark.parametrize(
    "url",
    ["redis://:secret@host:6379/0", "rediss://user:pw@host:6380/1", "unix:///run/r.sock?db=2"],
)
def test_redis_url_forms(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("REDIS_URL", url)
    assert Settings().redis_url == url
