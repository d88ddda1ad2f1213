"""Limits on a request's head (URL, header count, header size), enforced in the HTTP parser.

uvicorn's httptools protocol has none of its own: it buffers a URL or a header value of any
length and any number of headers, so a client could make a worker hold megabytes per
connection. gunicorn's `limit_request_line`, `limit_request_fields` and
`limit_request_field_size` only apply to its own workers; this protocol applies them to
uvicorn's, with gunicorn's meaning (0 is no limit) and its defaults. A request past them is
answered 414 or 431 and its connection closed, before it reaches the app.
"""

import asyncio
import sys
from dataclasses import dataclass
from typing import ClassVar

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_REASONS = {414: b"URI Too Long", 431: b"Request Header Fields Too Large"}


@dataclass(frozen=True, slots=True)
class HeadLimits:
    request_line: int = 4094
    fields: int = 100
    field_size: int = 8190

    @classmethod
    def from_gunicorn(cls, line: int, fields: int, field_size: int) -> "HeadLimits":
        return cls(line or sys.maxsize, fields or sys.maxsize, field_size or sys.maxsize)

    @property
    def head_bytes(self) -> int:
        """Most bytes a head within the limits can take, with its line ends: a single header
        value that never ends is cut off here, since the parser only hands over whole ones."""
        return min(sys.maxsize, self.request_line + self.fields * (self.field_size + 2) + 4)


class _HeadTooLargeError(Exception):
    pass


# The base methods, called directly: these run for every request, and super() builds a proxy
# object and walks the MRO on each call.
_data_received = HttpToolsProtocol.data_received
_on_headers_complete = HttpToolsProtocol.on_headers_complete
_on_message_complete = HttpToolsProtocol.on_message_complete


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """The URL, header count and header sizes are checked once the head is parsed (one check
    per request, not a Python call per header); the bytes of a head still being read are
    counted as they arrive, so a head that never ends is cut off at `HeadLimits.head_bytes`."""

    limits: ClassVar[HeadLimits] = HeadLimits()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._head_bytes = 0
        self._reading_head = True
        self._refusal: tuple[int, str] | None = None
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._reading_head:
            self._head_bytes += len(data)
            if self._head_bytes > self.limits.head_bytes:
                self._refusal = (431, "The request's headers are too large.")
                self.send_400_response("")
                return
        _data_received(self, data)

    def on_headers_complete(self) -> None:
        self._reading_head = False
        limits = self.limits
        if len(self.url) > limits.request_line:
            self._refuse(414, f"The URL is longer than {limits.request_line} bytes.")
        if len(self.headers) > limits.fields:
            self._refuse(431, f"More than {limits.fields} headers.")
        for name, value in self.headers:
            if len(name) + len(value) + 2 > limits.field_size:
                self._refuse(431, f"A header is longer than {limits.field_size} bytes.")
        _on_headers_complete(self)

    def on_message_complete(self) -> None:
        self._reading_head = True
        self._head_bytes = 0
        _on_message_complete(self)

    def _refuse(self, status: int, message: str) -> None:
        # Raised inside a parser callback: httptools turns it into a parser error, which
        # uvicorn answers through send_400_response, below.
        self._refusal = (status, message)
        raise _HeadTooLargeError(message)

    def send_400_response(self, msg: str) -> None:
        if self._refusal is None:
            super().send_400_response(msg)
            return
        status, message = self._refusal
        body = orjson.dumps({"error": message})
        self.transport.write(
            b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status])
            + b"content-type: application/json\r\n"
            + b"content-length: %d\r\n" % len(body)
            + b"connection: close\r\n\r\n"
            + body
        )
        self.transport.close()


def limited_protocol(limits: HeadLimits) -> type[LimitedHttpToolsProtocol]:
    return type("LimitedHttpToolsProtocol", (LimitedHttpToolsProtocol,), {"limits": limits})
