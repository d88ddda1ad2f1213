"""What every response carries and what no response or log line gives away: security
headers, CORS, the input limits, errors without internals, logs without inputs."""

import logging
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.settings import Settings, redacted_url
from tests.support.http import BODY

SECRET = "secret-input-do-not-log"
API_CSP = "default-src 'none'; frame-ancestors 'none'"


class LeakyModel:
    """A model whose error message quotes its input and an internal detail, as real ones do."""

    name = "leaky"
    version = "1"
    input_type = str
    example_input = "x"

    async def predict_batch(self, inputs: Sequence[Any]) -> list[str]:
        raise ValueError(f"cannot score {inputs[0]!r} at /srv/internal/model.bin")


def assert_api_headers(headers: Any) -> None:
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["cache-control"] == "no-store"
    assert headers["content-security-policy"] == API_CSP
    assert "x-frame-options" not in headers  # the CSP's frame-ancestors says it


def test_every_kind_of_answer_carries_the_security_headers(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(
        api_keys="key-a-0123456789abcdef", rate_limit_per_s=0.001, rate_limit_burst=4
    )
    auth = {"X-API-Key": "key-a-0123456789abcdef"}
    answers = [
        client.post("/predict", json=BODY, headers=auth),  # 200
        client.post("/predict", json=BODY),  # 401
        client.get(f"/predict/{uuid.uuid4()}", headers=auth),  # 404
        client.post("/predict", content=b"{", headers=auth),  # 422
        client.post("/predict", content=b"x" * 2_000_000, headers=auth),  # 413
        client.get("/openapi.json", headers=auth),  # 429: the burst of 4 is spent
        client.get("/healthz"),
    ]
    assert [a.status_code for a in answers] == [200, 401, 404, 422, 413, 429, 200]
    for answer in answers:
        assert_api_headers(answer.headers)


def test_the_docs_page_gets_a_policy_that_lets_swagger_ui_run(client: TestClient) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    csp = response.headers["content-security-policy"]
    # The page loads Swagger UI from the CDN and starts it with an inline script.
    assert "script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net" in csp
    assert "https://cdn.jsdelivr.net" in response.text
    assert "connect-src 'self'" in csp  # it fetches /openapi.json
    assert "frame-ancestors 'none'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"  # for browsers without CSP 2
    assert response.headers["referrer-policy"] == "no-referrer"
    assert client.get("/openapi.json").headers["content-security-policy"] == API_CSP


def test_cors_is_off_by_default(client: TestClient) -> None:
    response = client.post("/predict", json=BODY, headers={"Origin": "https://app.example"})
    assert "access-control-allow-origin" not in response.headers
    preflight = client.options(
        "/predict",
        headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers


def test_cors_answers_the_allowed_origins_only(make_client: Callable[..., TestClient]) -> None:
    client = make_client(
        cors_allow_origins="https://app.example, https://other.example",
        api_keys="key-a-0123456789abcdef",
    )
    preflight = client.options(
        "/predict",
        headers={
            "Origin": "https://app.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, async-mode",
        },
    )
    # The preflight carries no key and needs none.
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://app.example"
    assert "access-control-allow-credentials" not in preflight.headers
    answer = client.post(
        "/predict",
        json=BODY,
        headers={"Origin": "https://app.example", "X-API-Key": "key-a-0123456789abcdef"},
    )
    assert answer.headers["access-control-allow-origin"] == "https://app.example"
    assert "location" in answer.headers["access-control-expose-headers"].lower()
    refused = client.options(
        "/predict",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers


def test_input_longer_than_max_input_chars_is_422(make_client: Callable[..., TestClient]) -> None:
    client = make_client(max_input_chars=10)
    assert client.post("/predict", json={"input": "x" * 10}).status_code == 200
    for headers in ({}, {"async_mode": "true"}):
        response = client.post("/predict", json={"input": "x" * 11}, headers=headers)
        assert response.status_code == 422
        assert "at most 10 characters" in response.json()["error"]
    post = client.get("/openapi.json").json()["paths"]["/predict"]["post"]
    schema = post["requestBody"]["content"]["application/json"]["schema"]
    assert schema["properties"]["input"]["maxLength"] == 10


def test_an_unexpected_error_is_a_generic_500(redis_url: str) -> None:
    app = create_app(Settings(redis_url=redis_url, worker_concurrency=0), LeakyModel())
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.post("/predict", json={"input": SECRET})
    assert response.status_code == 500
    assert response.json() == {"error": "Internal error; it has been logged."}
    assert SECRET not in response.text
    assert "Traceback" not in response.text
    assert "/srv/internal" not in response.text
    assert_api_headers(response.headers)


def test_validation_errors_do_not_echo_the_input(client: TestClient) -> None:
    response = client.post("/predict", json={"input": ["x", SECRET]})
    assert response.status_code == 422
    assert SECRET not in response.text


@pytest.mark.parametrize("backend", ["stream", "background"])
@pytest.mark.parametrize("log_inputs", [False, True])
def test_model_errors_are_logged_without_the_input_unless_asked(
    make_client: Callable[..., TestClient],
    caplog: pytest.LogCaptureFixture,
    backend: str,
    log_inputs: bool,
) -> None:
    client = make_client(LeakyModel(), async_backend=backend, log_inputs=log_inputs, max_attempts=1)
    caplog.set_level(logging.INFO)
    location = client.post(
        "/predict", json={"input": SECRET}, headers={"async_mode": "true"}
    ).headers["location"]
    assert client.get(f"{location}?wait=5").json()["status"] == "failed"
    assert "event=model_error" in caplog.text
    assert (SECRET in caplog.text) is log_inputs


def test_the_redis_password_is_never_logged() -> None:
    assert redacted_url("redis://svc:hunter2@db:6379/0") == "redis://svc:***@db:6379/0"
    assert redacted_url("rediss://:hunter2@db/1") == "rediss://:***@db/1"
    assert redacted_url("unix:///run/redis.sock") == "unix:///run/redis.sock"


def test_settings_do_not_show_the_keys() -> None:
    assert "0123456789abcdef" not in repr(Settings(api_keys="key-a-0123456789abcdef"))
