from typing import Any, ClassVar

from uvicorn_worker import UvicornWorker


class Worker(UvicornWorker):  # type: ignore[misc]
    """uvicorn under gunicorn, pinned to the fast event loop and HTTP parser.

    `lifespan: on` makes a failed start-up (no Redis URL, a missing model artifact) stop the
    worker loudly instead of serving errors.
    """

    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {
        "loop": "uvloop",
        "http": "httptools",
        "lifespan": "on",
        "server_header": False,
    }
