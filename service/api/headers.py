"""What a prediction reads from its request's headers: the async-mode switch (in both
spellings), the `respond-async` and `wait` preferences of RFC 7240, and the idempotency key.

The API's first clients send the literal `async_mode: true` (underscore), which FastAPI's
Header() would look up as `async-mode`: every header here is read from the raw list, by its
exact name.
"""

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# The request headers a prediction reads (ASGI gives names in lower case), and its length.
PREDICTION_HEADERS = frozenset(
    {b"async_mode", b"async-mode", b"idempotency-key", b"prefer", b"content-length"}
)

ASYNC_MODE_HEADERS = ("async_mode", "async-mode")
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off", ""})


# A request's headers as the parsers read them: lower-case name -> its values, in order.
HeaderValues = Mapping[str, Sequence[str]]


def pick_headers(
    raw: Iterable[tuple[bytes, bytes]], names: frozenset[bytes] = PREDICTION_HEADERS
) -> dict[str, list[str]]:
    """The request headers named in `names`, found in one pass over the raw list: Starlette's
    Headers scans the whole list (decoding every name) for each name asked, and a prediction
    asks for five on every request. A plain dict, so that reading it costs no Python call."""
    picked: dict[str, list[str]] = {}
    for name, value in raw:
        if name in names:
            picked.setdefault(name.decode("latin-1"), []).append(value.decode("latin-1"))
    return picked


def first(headers: HeaderValues, name: str) -> str | None:
    values = headers.get(name)
    return values[0] if values else None


def _any_case(word: str) -> str:
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in word)


# The async-mode values in any case, as the OpenAPI document states them (JSON Schema patterns
# have no case-insensitive flag).
ASYNC_MODE_VALUE_PATTERN = (
    "^[ \\t]*(?:"
    + "|".join(_any_case(word) for word in sorted(_TRUE | _FALSE) if word)
    + ")?[ \\t]*$"
)

ASYNC_MODE_PARAMETERS: list[dict[str, Any]] = [
    {
        "name": name,
        "in": "header",
        "required": False,
        "description": (
            "`true` to run the prediction asynchronously: the answer is 202 with a "
            "`prediction_id` to poll. Both spellings are accepted; the value is "
            "case-insensitive (true/false, 1/0, yes/no, on/off)."
        ),
        "schema": {
            "type": "string",
            "pattern": ASYNC_MODE_VALUE_PATTERN,
            "examples": ["true", "false"],
        },
    }
    for name in ("async_mode", "Async-Mode")
]


class InvalidAsyncModeError(ValueError):
    pass


def async_mode_requested(headers: HeaderValues) -> bool:
    """The first spelling present decides; every value present must be valid."""
    requested: bool | None = None
    for name in ASYNC_MODE_HEADERS:
        for value in headers.get(name, ()):
            lowered = value.strip().lower()
            if lowered not in _TRUE and lowered not in _FALSE:
                raise InvalidAsyncModeError(
                    f"The {name} header must be true or false, not {value!r}."
                )
            if requested is None:
                requested = lowered in _TRUE
    return bool(requested)


def _preferences(headers: HeaderValues) -> Iterable[tuple[str, str]]:
    """Each preference of the Prefer headers, as (lower-case name, value); parameters after
    `;` are dropped (RFC 7240 section 2)."""
    for value in headers.get("prefer", ()):
        for preference in value.split(","):
            name, _, raw = preference.split(";")[0].strip().partition("=")
            yield name.strip().lower(), raw.strip().strip('"')


def respond_async_preferred(headers: HeaderValues) -> bool:
    """`Prefer: respond-async` (RFC 7240 section 4.1): the client asks for a 202."""
    return any(name == "respond-async" for name, _ in _preferences(headers))


def preferred_wait_s(headers: HeaderValues, max_wait_s: float) -> float | None:
    """Seconds the client will wait for the result (`Prefer: wait=5`), capped at MAX_WAIT_S;
    None if it did not ask. Unknown or malformed preferences are ignored, as RFC 7240 asks."""
    for name, raw in _preferences(headers):
        if name != "wait":
            continue
        try:
            seconds = float(raw)
        except ValueError:
            return None
        if seconds != seconds or seconds < 0:  # NaN or negative
            return None
        return min(seconds, max_wait_s)
    return None
