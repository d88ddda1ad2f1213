from typing import Any, ClassVar

from uvicorn_worker import UvicornWorker

from service.http_limits import HeadLimits, limited_protocol
from service.settings import Settings


class Worker(UvicornWorker):  # type: ignore[misc]
    """uvicorn under gunicorn, pinned to the fast event loop and HTTP parser.

    `lifespan: on` makes a failed start-up (no Redis URL, a missing model artifact) stop the
    worker loudly instead of serving errors. The parser enforces gunicorn's request-head
    limits (service/http_limits.py), which uvicorn alone would ignore.
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
        self.config.http = limited_protocol(limits)
        self.config.limit_concurrency = Settings().limit_concurrency
