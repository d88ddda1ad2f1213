"""Rate limiting per API key, or per client address without keys, as pure ASGI middleware.

The state lives in Redis (the GCRA script, service/storage/lua/rate_limit.lua), so the limit
holds across worker processes and hosts: one script call, one round trip, per limited request.
The middleware is only installed when RATE_LIMIT_PER_S is set: off, it costs nothing.
"""

import logging
import math

import orjson
from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from starlette.types import ASGIApp, Receive, Scope, Send

from service.api.middleware.api_keys import METRICS_PATH, OPEN_PATHS, key_id_of
from service.api.responses import send_json
from service.api.schemas import STORAGE_UNAVAILABLE
from service.storage import scripts
from service.storage.errors import STORAGE_ERRORS
from service.storage.keys import Keys

logger = logging.getLogger(__name__)

# Probes must not spend a client's budget, nor be refused when a client has spent it.
UNLIMITED_PATHS = OPEN_PATHS | {METRICS_PATH}


def _client_of(scope: Scope) -> str:
    key_id = key_id_of(scope)
    if key_id is not None:
        return f"key:{key_id}"
    client = scope.get("client")
    return f"addr:{client[0] if client else 'unknown'}"


class RateLimit:
    def __init__(
        self, app: ASGIApp, *, per_s: float, burst: int, keys: Keys, retry_after_s: int
    ) -> None:
        self.app = app
        self.keys = keys
        self.interval_us = max(1, round(1_000_000 / per_s))
        self.burst = burst
        self.unavailable_retry_after = str(retry_after_s).encode()
        self.too_many = orjson.dumps(
            {"error": f"Too many requests: the limit is {per_s:g}/s with bursts of {burst}."}
        )
        self._script: AsyncScript | None = None

    def _script_for(self, redis: Redis) -> AsyncScript:
        # The Redis client is made in the app's lifespan, after this middleware.
        if self._script is None or self._script.registered_client is not redis:
            self._script = redis.register_script(scripts.RATE_LIMIT)
        return self._script

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNLIMITED_PATHS:
            await self.app(scope, receive, send)
            return
        script = self._script_for(scope["app"].state.services.redis)
        try:
            wait_us = int(
                await script(
                    keys=[self.keys.rate_limit(_client_of(scope))],
                    args=[self.interval_us, self.burst],
                )
            )
        except STORAGE_ERRORS as exc:
            # Closed, not open: with the limit on, no request goes unmetered.
            logger.warning("event=rate_limit_unavailable error=%s", type(exc).__name__)
            await send_json(
                send,
                503,
                orjson.dumps({"error": STORAGE_UNAVAILABLE}),
                [(b"retry-after", self.unavailable_retry_after)],
            )
            return
        if wait_us > 0:
            retry_after = str(max(1, math.ceil(wait_us / 1_000_000))).encode()
            await send_json(send, 429, self.too_many, [(b"retry-after", retry_after)])
            return
        await self.app(scope, receive, send)
