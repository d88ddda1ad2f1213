"""gunicorn settings, from the environment (see the README's table). gunicorn reads this file
from the working directory; `make run` and the container both start it."""

import os
from pathlib import Path
from typing import Any

from service.embedded_redis import EmbeddedRedis
from service.settings import Settings

settings = Settings()

wsgi_app = "service.app:create_app()"
# The values below were chosen with `make bench-settings` (README, "Server settings,
# measured"), which measures each against its alternatives.
bind = [f"{settings.host}:{settings.port}"]
# One worker per core (WEB_CONCURRENCY defaults to the core count): a second worker on the
# same core served fewer sync requests with a worse p99 (13.8k against 15.0k rps).
workers = settings.web_concurrency
worker_class = "service.gunicorn_worker.Worker"
graceful_timeout = int(settings.graceful_timeout_s)
timeout = 60
# A request on a new connection costs twice one on a kept-alive connection (7.6k against 15.1k
# sync rps). 5 s keeps a client's connection across short pauses; behind a load balancer, set
# it above the balancer's idle timeout (GUNICORN_CMD_ARGS="--keep-alive 75"), or the balancer
# may send a request on a connection the worker is closing.
keepalive = 5
# 1,500 clients connecting at once: with a backlog of 128, the connections the kernel could not
# queue retried after a second (p99 4.4 s); with 2048, p99 0.25 s. The kernel caps it at
# net.core.somaxconn.
backlog = 2048
# gunicorn's defaults, spelled out: service/gunicorn_worker.py makes uvicorn's parser honour
# them (414 or 431 past them). GUNICORN_CMD_ARGS="--limit-request-fields 50" overrides.
limit_request_line = 4094
limit_request_fields = 100
limit_request_field_size = 8190
accesslog = "-" if settings.access_log else None
errorlog = "-"
loglevel = settings.log_level
proc_name = "prediction-service"
# One control socket per port, so that several servers on one host do not collide.
control_socket = str((settings.data_dir / f"gunicorn-{settings.port}.ctl").resolve())

_embedded: EmbeddedRedis | None = None


def _reset_metrics_dir(directory: Path) -> None:
    """Values left by a previous run would be added to this one's: start from none."""
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory.resolve())


def on_starting(server: Any) -> None:
    """Without REDIS_URL, start a real redis-server under DATA_DIR for the workers to share.

    With metrics on, give the workers one directory to write their values to, so that any of
    them can answer a scrape for all. The variable is set before the workers fork and before
    anything imports prometheus_client, which reads it at import.
    """
    global _embedded
    if settings.metrics_enabled:
        _reset_metrics_dir(
            settings.prometheus_multiproc_dir or settings.data_dir / f"metrics-{settings.port}"
        )
    if settings.redis_url is None:
        _embedded = EmbeddedRedis(settings.data_dir / "redis", binary=settings.redis_server_bin)
        os.environ["REDIS_URL"] = _embedded.start()
        server.log.info(
            "event=embedded_redis url=%s binary=%s", os.environ["REDIS_URL"], _embedded.binary
        )


def on_exit(server: Any) -> None:
    if _embedded is not None:
        _embedded.stop()


def child_exit(server: Any, worker: Any) -> None:
    """A worker is gone: drop its live gauges (in-flight, waiters), keep its counters."""
    if settings.metrics_enabled:
        # Imported here, never at the top: the master must not import prometheus_client
        # before on_starting has set PROMETHEUS_MULTIPROC_DIR.
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
