"""HTTP request metrics as pure ASGI middleware (BaseHTTPMiddleware runs each request in a task
of its own, with memory streams between the layers): count, latency and in-flight requests,
labelled by route template."""

from time import perf_counter
from typing import Final

from prometheus_client.metrics import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.metrics import BUFFER, HTTP_DURATION, HTTP_REQUESTS

# The route of a request answered without routing: a path no route matches (so scanners and
# typos cannot create a series per path), or a body refused by its size before routing.
UNROUTED: Final = "unrouted"
# Likewise for methods: anything else is labelled OTHER.
METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestRecorder:
    """Counts a request and observes its latency, labelled by route template, method and
    status. The labelled children are cached, so a request costs a dict lookup rather than
    prometheus_client's label handling; the values go to the metric buffer."""

    def __init__(self) -> None:
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def record(self, scope: Scope, status: int, seconds: float) -> None:
        route: str = getattr(scope.get("route"), "path_format", UNROUTED)
        method = scope["method"]
        if method not in METHODS:
            method = "OTHER"
        children = self.children(route, method, status)
        BUFFER.count_and_observe(children[0], children[1], seconds)

    def children(self, route: str, method: str, status: int) -> tuple[Counter, Histogram]:
        """The request counter's and the latency histogram's labelled children."""
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:
            children = (
                HTTP_REQUESTS.labels(route, method, str(status)),
                HTTP_DURATION.labels(route, method),
            )
            self._children[key] = children
        return children


class HTTPMetrics:
    """Records each request once, as the last byte of its response is sent.

    The route label is the template of the route the router chose (`scope["route"]`).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.recorder = RequestRecorder()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = perf_counter()
        status = 500  # what the client gets if the app raises before it answers
        done = False
        BUFFER.in_flight += 1

        async def send_and_record(message: Message) -> None:
            nonlocal status, done
            if message["type"] == "http.response.start":
                status = message["status"]
            # Recorded as the last byte is handed over, not after: a client that has its answer
            # finds it counted. Background tasks run later; they are not the request's latency.
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                done = True
                BUFFER.in_flight -= 1
                self.recorder.record(scope, status, perf_counter() - start)
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            if not done:
                BUFFER.in_flight -= 1
                self.recorder.record(scope, status, perf_counter() - start)
