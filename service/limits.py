import orjson
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.responses import send_json


def _too_large(max_bytes: int) -> str:
    return f"Request body is larger than the limit of {max_bytes} bytes (MAX_BODY_BYTES)."


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
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit():
                    await self._refuse(send, 400, "Content-Length must be a whole number.")
                    return
                if int(value) > self.max_bytes:
                    await self._refuse(send, 413, _too_large(self.max_bytes))
                    return
                break

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # Raised inside the route, so the app's own handler renders the 413.
                    raise HTTPException(413, _too_large(self.max_bytes))
            return message

        await self.app(scope, limited_receive, send)

    @staticmethod
    async def _refuse(send: Send, status: int, message: str) -> None:
        body = orjson.dumps({"error": message})
        await send_json(send, status, body, [(b"connection", b"close")])
