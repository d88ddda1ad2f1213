"""The security layers around the app, in the order a request meets them:

security headers (every response, a refusal too) -> CORS (a browser's preflight is answered
before any key is asked for) -> API key (401) -> rate limit (429, per key once it is known)
-> the body-size limit and the app. Each layer is pure ASGI middleware and is only installed
when its setting turns it on, so an unused control costs nothing.
"""

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from service.api.middleware.api_keys import ApiKeyAuth
from service.api.middleware.rate_limit import RateLimit
from service.api.middleware.security_headers import SecurityHeaders
from service.settings import Settings
from service.storage.keys import Keys

# What a browser on an allowed origin may send and read, beyond the CORS-safelisted ones.
CORS_REQUEST_HEADERS = [
    "Authorization",
    "X-API-Key",
    "Content-Type",
    "Async-Mode",
    "Idempotency-Key",
    "Prefer",
    "Last-Event-ID",  # an EventSource resuming a stream (GET /predict/{id}/events)
]
CORS_RESPONSE_HEADERS = ["Location", "Retry-After", "Preference-Applied", "Idempotent-Replayed"]


def add_security_middleware(app: FastAPI, settings: Settings) -> None:
    """Call after the app's own middleware: the last one added runs first."""
    if settings.rate_limit_per_s is not None:
        app.add_middleware(
            RateLimit,
            per_s=settings.rate_limit_per_s,
            burst=settings.effective_rate_limit_burst,
            keys=Keys(settings.key_prefix),
            retry_after_s=settings.retry_after_s,
        )
    if settings.api_key_list:
        app.add_middleware(
            ApiKeyAuth,
            keys=settings.api_key_list,
            metrics_require_key=settings.metrics_require_key,
        )
    if settings.cors_origin_list:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origin_list,
            allow_methods=["GET", "POST"],
            allow_headers=CORS_REQUEST_HEADERS,
            expose_headers=CORS_RESPONSE_HEADERS,
            # Keys travel in headers, never in cookies: no credentialed requests.
            allow_credentials=False,
            max_age=600,
        )
    app.add_middleware(SecurityHeaders)
