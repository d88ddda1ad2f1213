"""Schemathesis against the service's own OpenAPI document, over a real socket: every
operation with generated valid and invalid requests, then stateful sequences that follow the
document's links (submit, then poll the id it returned). No 5xx, nothing outside the schema."""

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.stateful import run_state_machine_as_test
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.schemas import OpenApiSchema

from service.server.embedded_redis import EmbeddedRedis
from tests.support.served import serve

pytestmark = pytest.mark.served

EXAMPLES = 60


@pytest.fixture(scope="module")
def api_schema(
    tmp_path_factory: pytest.TempPathFactory, redis_server: EmbeddedRedis
) -> Iterator[OpenApiSchema]:
    env = {
        "REDIS_URL": redis_server.url,
        "KEY_PREFIX": "fuzz:",
        "MAX_WAIT_S": "1",
        # Small enough that no schema-valid batch is over MAX_BODY_BYTES (413).
        "BATCH_MAX_INPUTS": "8",
    }
    with serve(env, tmp_path_factory.mktemp("fuzz")) as served:
        yield schemathesis.openapi.from_url(f"{served.url}/openapi.json")


def valid_beyond_the_schema(case: schemathesis.Case[Any]) -> None:
    """Rules no schema can state, kept in a case meant to be valid: a key is meant once per
    body (one reused with another body is refused, 422, by design); a webhook must name a
    host that resolves to a public address, in async mode, on a service that has a secret
    (each refusal a 422, tested in tests/jobs/test_webhooks.py): the body goes without one."""
    if case.headers and "Idempotency-Key" in case.headers:
        case.headers["Idempotency-Key"] = f"fuzz-{uuid.uuid4()}"
    # Only from a case meant to be valid: a negative case keeps what makes it invalid.
    positive = case.meta is None or case.meta.generation.mode is GenerationMode.POSITIVE
    if positive and isinstance(case.body, dict):
        case.body.pop("webhook", None)
        case.body.pop("webhook_events_filter", None)


# Negative cases need an input to break: the probes take none.
OPERATIONS = [
    *(
        (operation, mode)
        for operation in (
            "POST /predict",
            "GET /predict/{prediction_id}",
            "POST /predict/batch",
            "POST /predict/{prediction_id}/cancel",
            "GET /predict/{prediction_id}/events",
        )
        for mode in GenerationMode
    ),
    ("GET /healthz", GenerationMode.POSITIVE),
    ("GET /readyz", GenerationMode.POSITIVE),
]


@pytest.mark.parametrize(("operation", "mode"), OPERATIONS)
def test_every_operation_keeps_to_its_schema(
    api_schema: OpenApiSchema, operation: str, mode: GenerationMode
) -> None:
    method, path = operation.split(" ")

    @given(case=api_schema[path][method].as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    def check(case: schemathesis.Case[Any]) -> None:
        if mode is GenerationMode.POSITIVE:
            valid_beyond_the_schema(case)
        case.call_and_validate(timeout=10)

    check()


def test_submit_then_poll_sequences_keep_to_the_schema(api_schema: OpenApiSchema) -> None:
    class Workflow(api_schema.as_state_machine()):  # type: ignore[misc]
        def before_call(self, case: schemathesis.Case[Any]) -> None:
            valid_beyond_the_schema(case)

    run_state_machine_as_test(
        Workflow,
        settings=settings(
            max_examples=EXAMPLES // 2,
            stateful_step_count=4,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
