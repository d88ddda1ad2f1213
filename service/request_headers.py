from collections.abc import Iterable
from typing import Protocol

# The request headers a prediction reads (ASGI gives names in lower case).
PREDICTION_HEADERS = frozenset({b"async_mode", b"async-mode", b"idempotency-key", b"prefer"})


class HeaderLookup(Protocol):
    """What the header parsers need: Starlette's Headers, or PickedHeaders."""

    def getlist(self, key: str) -> list[str]: ...


class PickedHeaders:
    """The request headers named in `names`, found in one pass over the raw list.

    Starlette's Headers scans the whole list (decoding every name) for each name asked; a
    prediction asks for four, on every request.
    """

    __slots__ = ("_values",)

    def __init__(
        self, raw: Iterable[tuple[bytes, bytes]], names: frozenset[bytes] = PREDICTION_HEADERS
    ) -> None:
        values: dict[str, list[str]] = {}
        for name, value in raw:
            if name in names:
                values.setdefault(name.decode("latin-1"), []).append(value.decode("latin-1"))
        self._values = values

    def getlist(self, key: str) -> list[str]:
        return self._values.get(key, [])

    def get(self, key: str) -> str | None:
        values = self._values.get(key)
        return values[0] if values else None
