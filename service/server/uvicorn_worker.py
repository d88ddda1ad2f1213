import signal
import sys
from types import FrameType
from typing import Any, ClassVar

from uvicorn_worker import UvicornWorker

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

    def run(self) -> None:
        # uvloop closes a listening socket's descriptor itself and then calls the close method
        # of the object it was given: gunicorn's socket wrapper logs that second close as an
        # error ("Bad file descriptor"), a plain socket object knows it is closed already.
        self.sockets: list[Any] = [getattr(sock, "sock", sock) for sock in self.sockets]
        super().run()

    def init_signals(self) -> None:
        super().init_signals()
        # Ctrl-C reaches the workers as well as the master (a terminal signals its whole
        # foreground group). uvicorn shuts down as gracefully as on SIGTERM, then raises the
        # signal again to end the process: end it with status 0, a stop that was asked for.
        signal.signal(signal.SIGINT, _exit_asked)


def _exit_asked(signum: int, frame: FrameType | None) -> None:
    sys.exit(0)
