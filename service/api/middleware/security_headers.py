"""Security headers on every response, as pure ASGI middleware.

The API answers JSON that no browser should render, frame, sniff or cache, so its policy
forbids everything. The interactive docs are an HTML page that loads Swagger UI (or ReDoc)
from the CDN FastAPI points at and starts it with an inline script: only those pages get a
policy that allows exactly that. The header lists are built once; a response only gains them.
"""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_CDN = "https://cdn.jsdelivr.net"

# A JSON answer: not to be sniffed into something else, cached, or framed. The CSP's
# frame-ancestors is the standard that replaced X-Frame-Options; with default-src 'none' the
# document loads nothing and links nowhere, so a Referrer-Policy would have nothing to govern.
# Each header costs every answer (uvicorn validates each one), and these are the API's
# hottest paths: the HTML pages below, which browsers do render, get the older two as well.
API_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"cache-control", b"no-store"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
)

_COMMON = (
    (b"x-content-type-options", b"nosniff"),
    (b"cache-control", b"no-store"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)

DOCS_HEADERS = (
    *_COMMON,
    (
        b"content-security-policy",
        (
            f"default-src 'none'; script-src 'self' 'unsafe-inline' {_CDN}; "
            f"style-src 'self' 'unsafe-inline' {_CDN} https://fonts.googleapis.com; "
            "font-src https://fonts.gstatic.com; "
            "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly; "
            f"connect-src 'self'; worker-src blob:; frame-ancestors 'none'"
        ).encode(),
    ),
)

DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = DOCS_HEADERS if scope["path"] in DOCS_PATHS else API_HEADERS

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)
