import signal
import sys
import time
from types import FrameType
from typing import Any, ClassVar

from gunicorn.arbiter import Arbiter
from uvicorn import Config, Server
from uvicorn_worker import UvicornWorker

from service.lifecycle import begin_draining
from service.server.http_protocol import HeadLimits, ReadTimeouts, service_protocol
from service.settings import Settings


class Worker(UvicornWorker):  # type: ignore[misc]
    """uvicorn under gunicorn, pinned to the fast event loop and HTTP parser.

    `lifespan: on` makes a failed start-up (no Redis URL, a missing model artifact) stop the
    worker loudly instead of serving errors. The parser enforces gunicorn's request-head
    limits and times a request's head and body (service/server/http_protocol.py), which
    uvicorn alone would not.
    """

    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {
        "loop": "uvloop",
        "http": "httptools",
        "lifespan": "on",
        "server_header": False,
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        limits = HeadLimits.from_gunicorn(
            self.cfg.limit_request_line,
            self.cfg.limit_request_fields,
            self.cfg.limit_request_field_size,
        )
        settings = Settings()
        timeouts = ReadTimeouts(settings.header_timeout_s, settings.body_timeout_s)
        self.config.http = service_protocol(limits, timeouts)
        self.config.limit_concurrency = settings.limit_concurrency
        self.drain_s = settings.drain_s

    def run(self) -> None:
        # uvloop closes a listening socket's descriptor itself and then calls the close method
        # of the object it was given: gunicorn's socket wrapper logs that second close as an
        # error ("Bad file descriptor"), a plain socket object knows it is closed already.
        self.sockets: list[Any] = [getattr(sock, "sock", sock) for sock in self.sockets]
        super().run()

    async def _serve(self) -> None:
        # uvicorn_worker's own, with the draining server.
        self.config.app = self.wsgi
        server = DrainingServer(self.config, self.drain_s)
        self._install_sigquit_handler()
        await server.serve(sockets=self.sockets)
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)

    def init_signals(self) -> None:
        super().init_signals()
        # Ctrl-C reaches the workers as well as the master (a terminal signals its whole
        # foreground group). uvicorn shuts down as gracefully as on SIGTERM, then raises the
        # signal again to end the process: end it with status 0, a stop that was asked for.
        signal.signal(signal.SIGINT, _exit_asked)


class DrainingServer(Server):
    """uvicorn's server, which on SIGTERM first drains for `drain_s`: it keeps accepting and
    serving, with `/readyz` at 503 and every answer closing its connection
    (service/lifecycle.py), and only then stops as uvicorn does (stop accepting, finish what is
    in flight, shut the app down). A second SIGTERM, or SIGINT, stops at once."""

    def __init__(self, config: Config, drain_s: float) -> None:
        super().__init__(config)
        self.drain_s = drain_s
        self.drain_until: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGTERM and self.drain_s > 0 and self.drain_until is None:
            # Recorded as uvicorn records it, so the process ends as a SIGTERM'd one would.
            self._captured_signals.append(sig)
            self.drain_until = time.monotonic() + self.drain_s
            begin_draining()
            return
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        # uvicorn's main loop calls this every 0.1 s.
        if self.drain_until is not None and time.monotonic() >= self.drain_until:
            self.should_exit = True
        should_exit: bool = await super().on_tick(counter)
        return should_exit


def _exit_asked(signum: int, frame: FrameType | None) -> None:
    sys.exit(0)
