from starlette.datastructures import Headers

# The seed's clients send the literal `async_mode: true` (underscore), which FastAPI's Header()
# would look up as `async-mode`; both spellings are read from the raw headers.
HEADER_NAMES = ("async_mode", "async-mode")
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off", ""})

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
        "schema": {"type": "string", "enum": ["true", "false"]},
    }
    for name in ("async_mode", "Async-Mode")
]


class InvalidAsyncModeError(ValueError):
    pass


def async_mode_requested(headers: Headers) -> bool:
    for name in HEADER_NAMES:
        value = headers.get(name)
        if value is None:
            continue
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise InvalidAsyncModeError(f"The {name} header must be true or false, not {value!r}.")
    return False
