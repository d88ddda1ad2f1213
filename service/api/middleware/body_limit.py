from collections.abc import Iterable

import orjson
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.responses import send_json


def _too_large(max_bytes: int) -> str:
    return f"Request body is larger than the limit of {max_bytes} bytes (MAX_BODY_BYTES)."


def declared_length_refusal(
    headers: list[tuple[bytes, bytes]], max_bytes: int
) -> tuple[int, str] | None:
    """The status and message that refuse a request by its Content-Length, before its body
    is read; None if it may be read."""
    for name, value in headers:
        if name == b"content-length":
            return length_refusal(value.decode("latin-1"), max_bytes)
    return None


def length_refusal(content_length: str | None, max_bytes: int) -> tuple[int, str] | None:
    """declared_length_refusal, for the value of the first Content-Length header (or None)."""
    if content_length is None:
        return None
    if not (content_length.isascii() and content_length.isdigit()):
        return 400, "Content-Length must be a whole number."
    if int(content_length) > max_bytes:
        return 413, _too_large(max_bytes)
    return None


def too_large(max_bytes: int) -> HTTPException:
    """Raised while reading a body that has passed `max_bytes`: the app renders it."""
    return HTTPException(413, _too_large(max_bytes))


async def refuse(
    send: Send, status: int, message: str, headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    """Refuse a request before its body is read; the connection closes after the answer."""
    await send_json(
        send, status, orjson.dumps({"error": message}), [(b"connection", b"close"), *headers]
    )


class BodySizeLimit:
    """Pure ASGI middleware: 413 for a body over `max_bytes`, decided while reading.

    A declared Content-Length over the limit is refused before a byte of the body is read;
    a chunked or lying body is cut off as soon as the running count passes the limit.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = declared_length_refusal(scope["headers"], self.max_bytes)
        if refusal is not None:
            await refuse(send, *refusal)
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # Raised inside the route, so the app's own handler renders the 413.
                    raise too_large(self.max_bytes)
            return message

        await self.app(scope, limited_receive, send)
