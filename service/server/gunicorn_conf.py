"""gunicorn's configuration, from the environment (docs/configuration.md). `python -m service
serve` (`make run`, the container) hands it to gunicorn; GUNICORN_CMD_ARGS overrides it.

The values below were chosen with `make bench-settings`, which measures each against its
alternatives; docs/benchmarks.md has the figures.
"""

import os
from pathlib import Path
from typing import Any

from service.server.embedded_redis import EmbeddedRedis
from service.settings import Settings

settings = Settings()

wsgi_app = "service.api.app:create_app()"
bind = [f"{settings.host}:{settings.port}"]
# One worker per core (WEB_CONCURRENCY defaults to the core count): a second worker on the
# same core serves fewer requests, with a worse tail.
workers = settings.web_concurrency
worker_class = "service.server.uvicorn_worker.Worker"
# A worker told to stop first drains for DRAIN_S, then has GRACEFUL_TIMEOUT_S to finish.
graceful_timeout = int(settings.graceful_timeout_s + settings.drain_s + 1)
timeout = 60
# A request on a new connection costs about twice one on a kept-alive connection. 5 s keeps a
# client's connection across short pauses; behind a load balancer, set it above the balancer's
# idle timeout (GUNICORN_CMD_ARGS="--keep-alive 75"), or the balancer may send a request on a
# connection the worker is closing.
keepalive = 5
# When many clients connect at once, the connections the kernel cannot queue are retried a
# second later by their clients. The kernel caps it at net.core.somaxconn.
backlog = 2048
# gunicorn's defaults, spelled out: service/server/http_protocol.py makes uvicorn's parser honour
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
    """The workers are gone (their consumers stopped, their connections closed): only now
    does the embedded Redis stop."""
    if _embedded is not None:
        _embedded.stop()


def child_exit(server: Any, worker: Any) -> None:
    """A worker is gone: drop its live gauges (in-flight, waiters), keep its counters."""
    if settings.metrics_enabled:
        # Imported here, never at the top: the master must not import prometheus_client
        # before on_starting has set PROMETHEUS_MULTIPROC_DIR.
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
