from service.request_headers import HeaderLookup

# The seed's clients send the literal `async_mode: true` (underscore), which FastAPI's Header()
# would look up as `async-mode`; both spellings are read from the raw headers.
HEADER_NAMES = ("async_mode", "async-mode")
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off", ""})


def _any_case(word: str) -> str:
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in word)


# The values above in any case, as the OpenAPI document states them (JSON Schema patterns
# have no case-insensitive flag).
VALUE_PATTERN = (
    "^[ \\t]*(?:"
    + "|".join(_any_case(word) for word in sorted(_TRUE | _FALSE) if word)
    + ")?[ \\t]*$"
)

OPENAPI_PARAMETERS = [
    {
        "name": name,
        "in": "header",
        "required": False,
        "description": (
            "`true` to run the prediction asynchronously: the answer is 202 with a "
            "`prediction_id` to poll. Both spellings are accepted; the value is "
            "case-insensitive (true/false, 1/0, yes/no, on/off)."
        ),
        "schema": {"type": "string", "pattern": VALUE_PATTERN, "examples": ["true", "false"]},
    }
    for name in ("async_mode", "Async-Mode")
]


class InvalidAsyncModeError(ValueError):
    pass


def async_mode_requested(headers: HeaderLookup) -> bool:
    """The first spelling present decides; every value present must be valid."""
    requested: bool | None = None
    for name in HEADER_NAMES:
        for value in headers.getlist(name):
            lowered = value.strip().lower()
            if lowered not in _TRUE and lowered not in _FALSE:
                raise InvalidAsyncModeError(
                    f"The {name} header must be true or false, not {value!r}."
                )
            if requested is None:
                requested = lowered in _TRUE
    return bool(requested)
