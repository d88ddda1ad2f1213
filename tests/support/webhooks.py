"""A real HTTP receiver of webhooks for the tests, on 127.0.0.1 and a free port: it records
every request (headers and body, as received) and answers as the test scripts it."""

import base64
import http.server
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from standardwebhooks import Webhook

# A secret as the service takes it (whsec_ and 32 bytes in base64); tests only.
SECRET = "whsec_" + base64.b64encode(b"tests-only webhook secret, 32 b!").decode()


def local_env(secret: str = SECRET) -> dict[str, str]:
    """The environment of a served API that signs with `secret` and delivers to a receiver
    on this host (plain http to 127.0.0.1, which the defaults refuse)."""
    return {
        "WEBHOOK_SECRET": secret,
        "WEBHOOK_ALLOW_HTTP": "true",
        "WEBHOOK_ALLOW_PRIVATE": "true",
    }


@dataclass(frozen=True, slots=True)
class Delivery:
    headers: dict[str, str]
    body: bytes

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    def verified(self, secret: str = SECRET) -> object:
        """The payload, once standardwebhooks verified the signature (it raises otherwise)."""
        return Webhook(secret).verify(self.body, self.headers)


@dataclass
class Receiver:
    url: str
    # Statuses to answer, one per request in order; 200 once they run out. A `None` holds
    # the request open (unanswered) until `release` is set.
    answers: list[int | None] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_for(self, count: int, timeout_s: float = 10) -> list[Delivery]:
        deadline = time.monotonic() + timeout_s
        while len(self.deliveries) < count:
            assert time.monotonic() < deadline, f"{len(self.deliveries)} of {count} deliveries"
            time.sleep(0.01)
        return list(self.deliveries)


@contextmanager
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            headers = {name.lower(): value for name, value in self.headers.items()}
            with state.lock:
                state.deliveries.append(Delivery(headers, body))
                answer = state.answers.pop(0) if state.answers else 200
            if answer is None:
                state.release.wait(30)
                answer = 200
            self.send_response(answer)
            if 300 <= answer < 400:
                self.send_header("location", f"{state.url}/elsewhere")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()
