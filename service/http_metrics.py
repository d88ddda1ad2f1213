"""HTTP request metrics as pure ASGI middleware (BaseHTTPMiddleware would cost up to 3x
throughput): count, latency and in-flight requests, labelled by route template."""

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


class HTTPMetrics:
    """Records each request once, as the last byte of its response is sent.

    The route label is the template of the route the router chose (`scope["route"]`). The
    labelled children are cached, so a request costs a dict lookup rather than
    prometheus_client's label handling.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = perf_counter()
        status = 500  # what the client gets if the app raises before it answers
        done = False
        BUFFER.in_flight += 1

        def finish() -> None:
            nonlocal done
            done = True
            BUFFER.in_flight -= 1
            counter, histogram = self._labelled(scope, status)
            BUFFER.inc(counter)
            BUFFER.observe(histogram, perf_counter() - start)

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            # Recorded as the last byte is handed over, not after: a client that has its answer
            # finds it counted. Background tasks run later; they are not the request's latency.
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                finish()
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            if not done:
                finish()

    def _labelled(self, scope: Scope, status: int) -> tuple[Counter, Histogram]:
        route: str = getattr(scope.get("route"), "path_format", UNROUTED)
        method = scope["method"] if scope["method"] in METHODS else "OTHER"
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:
            children = (
                HTTP_REQUESTS.labels(route, method, str(status)),
                HTTP_DURATION.labels(route, method),
            )
            self._children[key] = children
        return children
