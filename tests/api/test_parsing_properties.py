"""Properties of request parsing, over generated input: the async_mode header, the Prefer
header, the body, the prediction id. Whatever arrives, the answer is a decision or a 4xx."""

import re
import uuid
from urllib.parse import quote

import orjson
import pytest
import redis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from service.api.headers import (
    ASYNC_MODE_VALUE_PATTERN,
    InvalidAsyncModeError,
    async_mode_requested,
    pick_headers,
    preferred_wait_s,
)
from service.api.middleware.api_keys import _presented_key
from service.storage.keys import Keys
from tests.support.redis_commands import commands_seen

# Header values as a server hands them over: latin-1 text without line breaks.
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=40)
SPELLINGS = ("async_mode", "Async-Mode", "ASYNC_MODE", "async-mode")
WITH_CLIENT = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@given(value=header_text, name=st.sampled_from(SPELLINGS))
def test_async_mode_is_a_bool_or_a_clear_refusal(value: str, name: str) -> None:
    pattern = ASYNC_MODE_VALUE_PATTERN
    headers = pick_headers([(name.lower().encode(), value.encode("latin-1"))])
    if re.fullmatch(pattern, value.strip()):
        expected = value.strip().lower() in {"true", "1", "yes", "on"}
        assert async_mode_requested(headers) is expected
    else:
        with pytest.raises(InvalidAsyncModeError, match=name.lower()):
            async_mode_requested(headers)


@given(word=st.sampled_from(["true", "yes", "on", "1"]), data=st.data())
def test_async_mode_ignores_case_and_spaces(word: str, data: st.DataObject) -> None:
    cased = "".join(c.upper() if data.draw(st.booleans()) else c for c in word)
    padded = " " * data.draw(st.integers(0, 3)) + cased + "\t" * data.draw(st.integers(0, 2))
    assert async_mode_requested(pick_headers([(b"async_mode", padded.encode())]))


@given(first=header_text, second=header_text)
def test_a_bad_value_in_either_spelling_is_refused(first: str, second: str) -> None:
    raw = [(b"async_mode", first.encode("latin-1")), (b"async-mode", second.encode("latin-1"))]
    valid = {"true", "1", "yes", "on", "false", "0", "no", "off", ""}
    both_valid = first.strip().lower() in valid and second.strip().lower() in valid
    if both_valid:
        async_mode_requested(pick_headers(raw))
    else:
        with pytest.raises(InvalidAsyncModeError):
            async_mode_requested(pick_headers(raw))


@given(values=st.lists(header_text, max_size=3), cap=st.floats(0.1, 1000))
def test_prefer_never_raises_and_stays_within_the_cap(values: list[str], cap: float) -> None:
    raw = [(b"prefer", value.encode("latin-1")) for value in values]
    wait = preferred_wait_s(pick_headers(raw), cap)
    assert wait is None or 0 <= wait <= cap


@given(
    seconds=st.floats(0, 10_000, allow_nan=False), other=st.sampled_from(["", "respond-async, "])
)
def test_prefer_wait_is_read_and_capped(seconds: float, other: str) -> None:
    headers = pick_headers([(b"prefer", f"{other}wait={seconds!r}".encode())])
    assert preferred_wait_s(headers, 30) == min(seconds, 30)


@given(key=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1))
def test_a_bearer_key_is_read_back_exactly(key: str) -> None:
    for scheme in (b"Bearer", b"bearer", b"BEARER"):
        assert _presented_key([(b"authorization", scheme + b" " + key.encode())]) == key.encode()
    assert _presented_key([(b"x-api-key", key.encode())]) == key.encode()


@given(job_id=st.uuids())
def test_a_job_key_is_the_prefix_and_the_canonical_uuid(job_id: uuid.UUID) -> None:
    assert re.fullmatch(
        r"pred:job:[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", Keys("pred:").job(job_id)
    )


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.integers(-(2**63), 2**63 - 1)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=20,
)


@WITH_CLIENT
@given(
    body=st.one_of(st.binary(max_size=200), json_values.map(orjson.dumps)),
    asynchronous=st.booleans(),
)
def test_any_body_is_answered_without_a_server_error(
    client: TestClient, body: bytes, asynchronous: bool
) -> None:
    headers = {"content-type": "application/json", "async_mode": str(asynchronous).lower()}
    response = client.post("/predict", content=body, headers=headers)
    assert response.status_code in ((202,) if asynchronous else (200,)) or (
        response.status_code == 422 and response.json()["error"].startswith("Invalid request")
    )


@WITH_CLIENT
@given(text=st.text(max_size=50))
def test_any_text_input_is_echoed_unchanged(client: TestClient, text: str) -> None:
    response = client.post("/predict", content=orjson.dumps({"input": text}))
    assert response.status_code == 200
    assert response.json()["input"] == text


@WITH_CLIENT
@given(
    segment=st.text(st.characters(codec="utf-8", exclude_characters="/?#"), min_size=1, max_size=80)
)
def test_only_a_uuid_reaches_redis(
    client: TestClient, redis_client: redis.Redis, segment: str
) -> None:
    try:
        uuid.UUID(segment)
        is_uuid = True
    except ValueError:
        is_uuid = False
    assume(segment not in (".", ".."))  # the client resolves those before sending
    redis_client.config_resetstat()
    response = client.get(f"/predict/{quote(segment, safe='')}")
    seen = commands_seen(redis_client)
    if is_uuid:
        assert response.status_code == 404
        assert seen == {"cmdstat_hgetall": 1}
    else:
        assert response.status_code in (404, 422)
        assert seen == {}


@pytest.mark.parametrize("depth", [150, 250, 100_000])
def test_deep_nesting_is_422(client: TestClient, depth: int) -> None:
    body = b'{"input": "x", "extra": ' + b"[" * depth + b"]" * depth + b"}"
    response = client.post("/predict", content=body)
    if depth < 200:
        assert response.status_code == 200
    else:
        assert response.status_code == 422
        assert "recursion limit" in response.json()["error"]
