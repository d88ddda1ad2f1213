"""The service's HTTP/1.1 protocol: uvicorn's httptools protocol, with limits on a request's
head, time limits on reading a request, and a cheaper way to write the headers every response
carries.

Limits. uvicorn's httptools protocol has none of its own: it buffers a URL or a header value of
any length and any number of headers, so a client could make a worker hold megabytes per
connection. gunicorn's `limit_request_line`, `limit_request_fields` and
`limit_request_field_size` only apply to its own workers; this protocol applies them to
uvicorn's, with gunicorn's meaning (0 is no limit) and its defaults. A request past them is
answered 414 or 431 and its connection closed, before it reaches the app.

Read timeouts. Nothing in the stack bounds the time a request takes to arrive: uvicorn's only
timer on an HTTP connection is its keep-alive timeout, armed when a response completes and
cancelled by the next byte received (`on_response_complete`, `data_received`); a connection
that has just opened, or is sending a head or a body, has none. httptools and h11 are parsers
and keep no time; gunicorn's `timeout` is the master's heartbeat check on a worker, not a limit
on a request. So a client that sends one header line every few seconds holds a connection (a
file descriptor and its buffers) for as long as it likes. Here a request's head must be whole
within `header_s` of its first byte (of the connection's opening, for its first request), and
its body within `body_s` of the end of its head; past that the server answers 408 and closes
the connection (only closes it, if a response to that request has begun). The timers are the
event loop's: one armed when a connection opens, cancelled by its first head, and one more
only when a data chunk leaves a request unfinished, cancelled when it is finished; a request
that arrives in one chunk on a kept-alive connection, the usual case, arms none.

Pre-encoded headers. uvicorn checks every header of every response with two regular
expressions and encodes it anew. The headers the service sends on every answer (its security
headers) are the same bytes each time: an app may hand them over already encoded, as one block,
under the ASGI extension PREENCODED_HEADERS (offered in the scope's `extensions`). The server
checks a block with uvicorn's own expressions the first time it sees it, and then writes it as
it is. No library offers this, so it is written here, on uvicorn's request-response cycle:
`on_headers_complete` and `ResponseCycle.send` follow uvicorn's own (uvicorn's lock-file version
is the one they follow; tests/server and tests/api hold the answers to it byte for byte).
"""

import asyncio
import sys
import urllib.parse
from dataclasses import dataclass
from typing import Any, ClassVar, Final

import httptools
import orjson
from uvicorn.protocols.http.flow_control import service_unavailable
from uvicorn.protocols.http.httptools_impl import (
    HEADER_RE,
    HEADER_VALUE_RE,
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)
from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string

from service.lifecycle import draining

# The ASGI extension, and the key of an `http.response.start` message that carries the block:
# header lines (`name: value\r\n` each), lower-case names, written after the server's own.
PREENCODED_HEADERS: Final = "service.preencoded_headers"
EXTENSIONS: Final[dict[str, dict[str, object]]] = {PREENCODED_HEADERS: {}}
# Blocks are constants of an app; a few distinct ones are remembered as checked.
_MAX_CHECKED_BLOCKS = 64

_REASONS = {
    408: b"Request Timeout",
    414: b"URI Too Long",
    431: b"Request Header Fields Too Large",
}


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


@dataclass(frozen=True, slots=True)
class ReadTimeouts:
    header_s: float = 10.0
    body_s: float = 30.0


def _count_cut(phase: str) -> None:
    # Imported here, never at the top: gunicorn's master imports this module (it loads the
    # worker class) before PROMETHEUS_MULTIPROC_DIR is set, which prometheus_client reads at
    # import. By the first cut, a worker has imported it long since.
    from service.metrics import connection_timed_out

    connection_timed_out(phase)


class _HeadTooLargeError(Exception):
    pass


class InvalidPreencodedHeadersError(RuntimeError):
    pass


def check_block(block: bytes) -> None:
    """Raise unless `block` is header lines uvicorn would write for the same headers."""
    if not block.endswith(b"\r\n"):
        raise InvalidPreencodedHeadersError("a block of header lines ends with CRLF")
    for line in block[:-2].split(b"\r\n"):
        name, separator, value = line.partition(b": ")
        if (
            not separator
            or not name
            or name != name.lower()
            or HEADER_RE.search(name)
            or HEADER_VALUE_RE.search(value)
        ):
            raise InvalidPreencodedHeadersError(f"not a valid header line: {line!r}")


_checked_blocks: set[bytes] = set()

# The base methods, called directly: they run for every request, and super() builds a proxy
# object and walks the MRO on each call.
_data_received = HttpToolsProtocol.data_received
_on_message_complete = HttpToolsProtocol.on_message_complete


class ServiceHttpProtocol(HttpToolsProtocol):
    """The URL, header count and header sizes are checked once the head is parsed (one check
    per request, not a Python call per header); the bytes of a head still being read are
    counted as they arrive, so a head that never ends is cut off at `HeadLimits.head_bytes`."""

    limits: ClassVar[HeadLimits] = HeadLimits()
    # limits.head_bytes and limits.field_size, read on every request.
    head_bytes: ClassVar[int] = HeadLimits().head_bytes
    field_size: ClassVar[int] = HeadLimits().field_size
    timeouts: ClassVar[ReadTimeouts] = ReadTimeouts()

    # A connection with no request in hand when the server stops may have one on its way
    # (accepted just before the listener closed, or kept alive by a client about to send):
    # closed at once, its client would read a reset. It gets this long to arrive, and is
    # answered with `Connection: close`.
    shutdown_grace_s: ClassVar[float] = 0.5

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._head_bytes = 0
        self._reading_head = True
        self._refusal: tuple[int, str] | None = None
        self._stopping = False
        super().connection_made(transport)
        # The first request's head is timed from the connection's opening: a client that
        # connects and sends nothing is cut off too (uvicorn arms no timer until a response).
        self._read_timer: asyncio.TimerHandle | None = None
        self._arm_read_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_read_timer()
        super().connection_lost(exc)

    def shutdown(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        if self.cycle is None or self.cycle.response_complete:
            self.loop.call_later(self.shutdown_grace_s, self._shut_down_after_grace)
        else:
            super().shutdown()

    def _shut_down_after_grace(self) -> None:
        # uvicorn's own shutdown, once the grace is over: it closes an idle connection, and
        # lets one whose request arrived meanwhile finish its answer first.
        if not self.transport.is_closing():
            super().shutdown()

    def data_received(self, data: bytes) -> None:
        if self._reading_head:
            self._head_bytes += len(data)
            if self._head_bytes > self.head_bytes:
                self._refusal = (431, "The request's headers are too large.")
                self.send_400_response("")
                return
        _data_received(self, data)
        # A request left unfinished by this chunk: its head (bytes counted since the last
        # request ended) or its body (the head is parsed). A chunk that ends a request and
        # begins the next counts no bytes of the next: that connection is closed by the
        # keep-alive timeout, which uvicorn arms when the response is done, unless more comes.
        if (
            self._read_timer is None
            and (self._head_bytes or not self._reading_head)
            and not self.transport.is_closing()
        ):
            self._arm_read_timer()

    def _arm_read_timer(self) -> None:
        self._read_timer = self.loop.call_later(
            self.timeouts.header_s if self._reading_head else self.timeouts.body_s,
            self._read_timed_out,
        )

    def _cancel_read_timer(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _read_timed_out(self) -> None:
        self._read_timer = None
        if self.transport.is_closing():
            return
        if self.flow.read_paused:
            # The server stopped reading (a pipelined request waits, or the app has not taken
            # the body so far): the client is not the slow one.
            self._arm_read_timer()
            return
        if not self._reading_head:
            _count_cut("body")
            if self.cycle.response_started:
                self.transport.close()
                return
            self._refusal = (408, "The request's body did not arrive in time.")
        else:
            _count_cut("head")
            self._refusal = (408, "The request's head did not arrive in time.")
        self.send_400_response("")

    def on_headers_complete(self) -> None:
        self._reading_head = False
        if self._read_timer is not None:
            self._cancel_read_timer()
        limits = self.limits
        if len(self.url) > limits.request_line:
            self._refuse(414, f"The URL is longer than {limits.request_line} bytes.")
        if len(self.headers) > limits.fields:
            self._refuse(431, f"More than {limits.fields} headers.")
        # No header can be longer than all the bytes received so far.
        if self._head_bytes > self.field_size:
            for name, value in self.headers:
                if len(name) + len(value) + 2 > limits.field_size:
                    self._refuse(431, f"A header is longer than {limits.field_size} bytes.")
        # uvicorn's own, from here, but for the extension and the cycle's class.
        parser = self.parser
        http_version = parser.get_http_version()
        scope: Any = self.scope
        scope["method"] = parser.get_method().decode("ascii")
        if http_version != "1.1":
            scope["http_version"] = http_version
        if parser.should_upgrade() and self._should_upgrade():
            return
        parsed_url = httptools.parse_url(self.url)
        raw_path = parsed_url.path
        path = raw_path.decode("ascii")
        if "%" in path:
            path = urllib.parse.unquote(path)
        scope["path"] = self.root_path + path
        scope["raw_path"] = self.root_path.encode("ascii") + raw_path
        scope["query_string"] = parsed_url.query or b""
        scope["extensions"] = EXTENSIONS

        if self.limit_concurrency is not None and (
            len(self.connections) >= self.limit_concurrency
            or len(self.tasks) >= self.limit_concurrency
        ):
            app: Any = service_unavailable
            self.logger.warning("Exceeded concurrency limit.")
        else:
            app = self.app

        existing_cycle = self.cycle
        self.cycle = ResponseCycle(
            scope=scope,
            transport=self.transport,
            flow=self.flow,
            logger=self.logger,
            access_logger=self.access_logger,
            access_log=self.access_log,
            default_headers=self.server_state.default_headers,
            message_event=asyncio.Event(),
            expect_100_continue=self.expect_100_continue,
            # A draining or stopping process closes each connection after its answer
            # (service/lifecycle.py).
            keep_alive=http_version != "1.0"
            and parser.should_keep_alive()
            and not (draining() or self._stopping),
            on_response=self.on_response_complete,
        )
        if existing_cycle is None or existing_cycle.response_complete:
            self._start_asgi_task(self.cycle, app)
        else:
            # Pipelined HTTP requests queue up.
            self.flow.pause_reading()
            self.pipeline.appendleft((self.cycle, app))

    def on_message_complete(self) -> None:
        self._reading_head = True
        self._head_bytes = 0
        if self._read_timer is not None:
            self._cancel_read_timer()
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


class ResponseCycle(RequestResponseCycle):
    """uvicorn's request-response cycle, whose `http.response.start` may carry a block of
    pre-encoded header lines (PREENCODED_HEADERS), and whose head and first body part go out
    in one write."""

    _head = b""

    async def send(self, message: Any) -> None:
        if self.flow.write_paused and not self.disconnected:
            await self.flow.drain()
        if self.disconnected:
            return
        if self.response_started:
            self._write_body(message)
            return
        if message["type"] != "http.response.start":
            raise RuntimeError(
                f"Expected ASGI message 'http.response.start', but got '{message['type']}'."
            )
        self.response_started = True
        self.waiting_for_100_continue = False
        status_code = message["status"]
        if self.access_log:
            self.access_logger.info(
                '%s - "%s %s HTTP/%s" %d',
                get_client_addr(self.scope),
                self.scope["method"],
                get_path_with_query_string(self.scope),
                self.scope["http_version"],
                status_code,
            )
        content = [STATUS_LINE[status_code]]
        has_connection_close = False
        # The server's own headers (date, server) come first, as uvicorn writes them.
        for name, value in (*self.default_headers, *message.get("headers", ())):
            if HEADER_RE.search(name):
                raise RuntimeError("Invalid HTTP header name.")
            if HEADER_VALUE_RE.search(value):
                raise RuntimeError("Invalid HTTP header value.")
            name = name.lower()
            if name == b"content-length" and self.chunked_encoding is None:
                self.expected_content_length = int(value.decode())
                self.chunked_encoding = False
            elif name == b"transfer-encoding" and value.lower() == b"chunked":
                self.expected_content_length = 0
                self.chunked_encoding = True
            elif name == b"connection":
                connection = [token.lower().strip() for token in value.split(b",")]
                if b"close" in connection:
                    self.keep_alive = False
                    has_connection_close = True
            content.extend([name, b": ", value, b"\r\n"])
        block = message.get(PREENCODED_HEADERS)
        if block is not None:
            if block not in _checked_blocks:
                check_block(block)
                if len(_checked_blocks) < _MAX_CHECKED_BLOCKS:
                    _checked_blocks.add(block)
            content.append(block)
        if not self.keep_alive and not has_connection_close:
            content.append(b"connection: close\r\n")
        if (
            self.chunked_encoding is None
            and self.scope["method"] != "HEAD"
            and status_code not in (204, 304)
        ):
            # Neither content-length nor transfer-encoding specified
            self.chunked_encoding = True
            content.append(b"transfer-encoding: chunked\r\n")
        content.append(b"\r\n")
        # Held until the body's first message, so that an answer is one write (one system
        # call), not two.
        self._head = b"".join(content)

    def _write_body(self, message: Any) -> None:
        if self.response_complete:
            raise RuntimeError(
                f"Unexpected ASGI message '{message['type']}' sent, after response already "
                "completed."
            )
        if message["type"] != "http.response.body":
            raise RuntimeError(
                f"Expected ASGI message 'http.response.body', but got '{message['type']}'."
            )
        body = message.get("body", b"")
        more_body = message.get("more_body", False)
        head, self._head = self._head, b""
        if self.scope["method"] == "HEAD":
            self.expected_content_length = 0
            if head:
                self.transport.write(head)
        elif self.chunked_encoding:
            content = [head, b"%x\r\n" % len(body), body, b"\r\n"] if body else [head]
            if not more_body:
                content.append(b"0\r\n\r\n")
            self.transport.write(b"".join(content))
        else:
            num_bytes = len(body)
            if num_bytes > self.expected_content_length:
                raise RuntimeError("Response content longer than Content-Length")
            self.expected_content_length -= num_bytes
            self.transport.write(head + body if head else body)
        if not more_body:
            if self.expected_content_length != 0:
                raise RuntimeError("Response content shorter than Content-Length")
            self.response_complete = True
            self.message_event.set()
            if not self.keep_alive:
                self.transport.close()
            self.on_response()


def service_protocol(
    limits: HeadLimits, timeouts: ReadTimeouts = ReadTimeouts()
) -> type[ServiceHttpProtocol]:
    return type(
        "ServiceHttpProtocol",
        (ServiceHttpProtocol,),
        {
            "limits": limits,
            "head_bytes": limits.head_bytes,
            "field_size": limits.field_size,
            "timeouts": timeouts,
        },
    )
