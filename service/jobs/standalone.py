"""Stream consumers in a process of their own, on any host that reaches Redis
(`python -m service worker`, `make worker`): WORKER_CONCURRENCY of them, at least one."""

import asyncio
import contextlib
import logging
import signal

from service import metrics
from service.jobs.runtime import JobRuntime
from service.models.loading import load_model
from service.settings import Settings, redacted_url

logger = logging.getLogger(__name__)


async def serve(settings: Settings) -> None:
    """Consume until SIGTERM or SIGINT, then let the batches in hand finish."""
    count = max(settings.worker_concurrency, 1)
    jobs = JobRuntime(settings, load_model(settings), consumers=count)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    jobs.start(serving=False)
    flusher = asyncio.create_task(metrics.flush_periodically())
    logger.info(
        "event=worker_started consumers=%d redis=%s", count, redacted_url(settings.redis_url)
    )
    await stop.wait()
    logger.info("event=worker_stopping timeout_s=%s", settings.graceful_timeout_s)
    await jobs.close()
    flusher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await flusher
    metrics.BUFFER.flush()
    logger.info("event=worker_stopped")


def run(settings: Settings) -> None:
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(settings))
    else:
        uvloop.run(serve(settings))
