"""API keys (API_KEYS), as pure ASGI middleware: 401 without a valid key.

A key is sent as `Authorization: Bearer <key>` or `X-API-Key: <key>`. Keys are compared as
SHA-256 digests with `hmac.compare_digest`, against every configured key without stopping at
a match, so neither the position of a wrong byte nor a key's length nor which key matched shows
in the time taken. A request that passes carries its key's id, a digest that is not the key,
in the scope: jobs are stored with it and shown only to the same key.
"""

import hashlib
import hmac
from collections.abc import Sequence

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from service.api.responses import send_json

# Where a request's key id travels from this middleware to the routes.
KEY_ID_SCOPE = "api_key_id"

# Load balancers and orchestrators probe these without credentials.
OPEN_PATHS = frozenset({"/healthz", "/readyz"})
METRICS_PATH = "/metrics"

_UNAUTHORIZED_BODY = orjson.dumps(
    {"error": "A valid API key is required: send `Authorization: Bearer <key>` or `X-API-Key`."}
)
_CHALLENGE = ((b"www-authenticate", b"Bearer"),)


def key_id(key: str) -> str:
    """What a job records as its owner: derived from the key, and not the key."""
    return hashlib.sha256(b"prediction-owner\0" + key.encode()).hexdigest()[:32]


def key_id_of(scope: Scope) -> str | None:
    """The id of the key the request was authenticated with; None with auth off."""
    owner: str | None = scope.get(KEY_ID_SCOPE)
    return owner


def _presented_key(headers: Sequence[tuple[bytes, bytes]]) -> bytes | None:
    api_key = None
    for name, value in headers:
        if name == b"authorization":
            scheme, _, credentials = value.partition(b" ")
            if scheme.lower() == b"bearer":
                return credentials.strip()
        elif name == b"x-api-key":
            api_key = value.strip()
    return api_key


class ApiKeyAuth:
    def __init__(self, app: ASGIApp, keys: Sequence[str], *, metrics_require_key: bool) -> None:
        self.app = app
        self.keys = [(hashlib.sha256(key.encode()).digest(), key_id(key)) for key in keys]
        self.open_paths = OPEN_PATHS if metrics_require_key else OPEN_PATHS | {METRICS_PATH}

    def authenticate(self, presented: bytes | None) -> str | None:
        if presented is None:
            return None
        digest = hashlib.sha256(presented).digest()
        matched = None
        for known, owner in self.keys:
            if hmac.compare_digest(digest, known):
                matched = owner
        return matched

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.open_paths:
            await self.app(scope, receive, send)
            return
        owner = self.authenticate(_presented_key(scope["headers"]))
        if owner is None:
            await send_json(send, 401, _UNAUTHORIZED_BODY, _CHALLENGE)
            return
        scope[KEY_ID_SCOPE] = owner
        await self.app(scope, receive, send)
