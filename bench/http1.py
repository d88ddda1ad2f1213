"""The bit of HTTP/1.1 the harness's own clients speak: a request's bytes, and a response head's
status, Content-Length and the few headers a client needs. Bench clients speak it themselves
because a general client (httpx) costs more CPU per request than the servers they measure
spend on it, and that cost lands in the latencies; only answers with a Content-Length are
accepted."""


class ProtocolViolationError(RuntimeError):
    pass


def request(
    method: str, host: str, port: int, path: str, body: bytes = b"", headers: str = ""
) -> bytes:
    """A request's bytes; `headers` are extra header lines, each ending in CRLF."""
    length = f"Content-Length: {len(body)}\r\n" if body or method == "POST" else ""
    return (
        f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{headers}{length}\r\n"
    ).encode() + body


def parse_head(head: bytes, wanted: tuple[bytes, ...] = ()) -> tuple[int, int, dict[bytes, bytes]]:
    """The status, the Content-Length and the `wanted` headers (lower-case names) of a response
    head without its final CRLF CRLF; anything else is refused."""
    status_line, *lines = head.split(b"\r\n")
    version, _, rest = status_line.partition(b" ")
    if not version.startswith(b"HTTP/1.") or not rest[:3].isdigit():
        raise ProtocolViolationError(f"not an HTTP/1.x status line: {status_line!r}")
    length = None
    found: dict[bytes, bytes] = {}
    for line in lines:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            if not value.strip().isdigit():
                raise ProtocolViolationError(f"Content-Length {value.strip()!r}")
            length = int(value)
        elif name == b"transfer-encoding":
            raise ProtocolViolationError(f"Transfer-Encoding {value.strip()!r}: not supported")
        elif name in wanted:
            found[name] = value.strip()
    if length is None:
        raise ProtocolViolationError(f"a response without Content-Length: {head!r}")
    return int(rest[:3]), length, found
