"""Every Prometheus metric the service exports, and the helpers that record them.

Under gunicorn, `PROMETHEUS_MULTIPROC_DIR` (set by service/server/gunicorn_conf.py before the
workers fork) puts prometheus_client in multiprocess mode: each worker writes its values to
files there, and a scrape of any worker reads and aggregates them all. A gauge's
`multiprocess_mode` says how workers' values combine; the `live*` modes forget a worker once
gunicorn reports it dead.
"""

import asyncio
import os
import time
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Final

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

# Sub-millisecond at the bottom: a sync prediction takes far less than a millisecond when the
# service is idle, and the interesting tail under load is in the low milliseconds.
LATENCY_BUCKETS: Final = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
# A Redis round trip on loopback is a fraction of a millisecond; a blocking read (XREADGROUP
# BLOCK) waits longer.
REDIS_BUCKETS: Final = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip
# Jobs wait from milliseconds (idle) to minutes (a backlog); both ends must be readable.
QUEUE_BUCKETS: Final = (
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
)  # fmt: skip
BATCH_BUCKETS: Final = (1, 2, 4, 8, 16, 32, 64, 128, 256)

# HTTP (recorded by service.api.middleware.metrics)
HTTP_REQUESTS: Final = Counter(
    "http_requests_total",
    "HTTP requests answered, by route template, method and status code.",
    ["route", "method", "status"],
)
HTTP_DURATION: Final = Histogram(
    "http_request_duration_seconds",
    "Time from the request's arrival to the last byte of its response.",
    ["route", "method"],
    buckets=LATENCY_BUCKETS,
)
HTTP_IN_FLIGHT: Final = Gauge(
    "http_requests_in_flight",
    "HTTP requests being served right now, over all workers.",
    multiprocess_mode="livesum",
)
HTTP_CONNECTIONS_TIMED_OUT: Final = Counter(
    "http_connections_timed_out_total",
    "Connections closed because a request's head or body did not arrive in time (answered 408"
    " unless a response had begun), by the part that was late.",
    ["phase"],
)

# Async jobs (recorded by the queue's submit path and its workers)
JOBS_SUBMITTED: Final = Counter(
    "prediction_jobs_submitted_total", "Async prediction jobs accepted (answered 202)."
)
JOBS_FINISHED: Final = Counter(
    "prediction_jobs_finished_total",
    "Async prediction jobs that reached a final state, by that state.",
    ["state"],
)
JOBS_RECLAIMED: Final = Counter(
    "prediction_jobs_reclaimed_total",
    "Jobs taken over from a consumer that held them too long (XAUTOCLAIM).",
)
JOBS_DEAD_LETTERED: Final = Counter(
    "prediction_jobs_dead_lettered_total",
    "Jobs given up after MAX_ATTEMPTS and copied to the dead-letter stream.",
)
QUEUE_BACKLOG: Final = Gauge(
    "prediction_queue_backlog_jobs",
    "Jobs in the stream not yet finished, as last sampled from Redis.",
    multiprocess_mode="livemax",
)
QUEUE_OLDEST_AGE: Final = Gauge(
    "prediction_queue_oldest_job_age_seconds",
    "Age of the oldest job not yet finished, as last sampled from Redis.",
    multiprocess_mode="livemax",
)
QUEUE_WAIT: Final = Histogram(
    "prediction_queue_wait_seconds",
    "Time a job spent queued, from its submission to a worker starting it.",
    buckets=QUEUE_BUCKETS,
)
TIME_TO_RESULT: Final = Histogram(
    "prediction_time_to_result_seconds",
    "Time from a job's submission to its final state being stored.",
    buckets=QUEUE_BUCKETS,
)
LONG_POLL_WAITERS: Final = Gauge(
    "prediction_long_poll_waiters",
    "Requests waiting for a job to finish (long-poll and Prefer: wait).",
    multiprocess_mode="livesum",
)
SSE_STREAMS: Final = Gauge(
    "prediction_sse_streams",
    "Open event streams of jobs (GET /predict/{id}/events).",
    multiprocess_mode="livesum",
)

# Webhooks (recorded by the dispatcher, service/jobs/webhooks.py)
WEBHOOK_DELIVERIES: Final = Counter(
    "prediction_webhook_deliveries_total",
    "Webhook delivery attempts, by what became of them: delivered (2xx), retried (a timeout, a"
    " connection error, 429 or 5xx), gone (410: not sent again), dead (given up).",
    ["outcome"],
)
WEBHOOK_DELIVERY_SECONDS: Final = Histogram(
    "prediction_webhook_delivery_seconds",
    "Time of one delivery attempt, from connecting to the receiver's whole answer.",
    buckets=LATENCY_BUCKETS,
)

# The model (recorded by service.models.measured, around every model call)
MODEL_DURATION: Final = Histogram(
    "prediction_model_seconds",
    "Time in the model per call (one call predicts a whole batch).",
    buckets=LATENCY_BUCKETS,
)
BATCH_SIZE: Final = Histogram(
    "prediction_batch_size", "Inputs per model call.", buckets=BATCH_BUCKETS
)
MODEL_INFO: Final = Gauge(
    "prediction_model_info",
    "The model being served (always 1; the labels carry the information).",
    ["name", "version"],
    multiprocess_mode="livemax",
)

# Redis (recorded by service.storage.measured, around every round trip)
REDIS_ROUND_TRIPS: Final = Counter(
    "prediction_redis_round_trips_total",
    "Round trips to Redis, by operation (a command, or a pipeline's distinct commands).",
    ["operation"],
)
REDIS_DURATION: Final = Histogram(
    "prediction_redis_round_trip_seconds",
    "Time of one round trip to Redis, by operation.",
    ["operation"],
    buckets=REDIS_BUCKETS,
)

# Processes: one series per live process (the pid label), to count workers and see restarts.
PROCESS_START: Final = Gauge(
    "prediction_process_start_time_seconds",
    "Start time of each live service process, in seconds since the epoch.",
    multiprocess_mode="liveall",
)


class Buffer:
    """Observations gathered in plain Python and written to prometheus_client once per flush.

    In multiprocess mode every counter increment or histogram observation is a locked write
    to a memory-mapped file: the nine of a sync request cost more than the request itself.
    Here they are sums in a dict until `flush` (every METRICS_FLUSH_S, before every scrape
    this process answers, and at exit) writes each sum once. prometheus_client has no API to
    add to a histogram in bulk, so its bucket and sum values are written directly.
    """

    def __init__(self) -> None:
        self._counts: dict[Any, float] = {}
        self._histograms: dict[Any, list[float]] = {}
        self.in_flight = 0
        self.long_poll_waiters = 0

    def inc(self, child: Any, amount: float = 1.0) -> None:
        self._counts[child] = self._counts.get(child, 0.0) + amount

    def observe(self, child: Any, value: float) -> None:
        sums = self._histograms.get(child)
        if sums is None:
            sums = self._histograms[child] = [0.0] * (len(child._upper_bounds) + 1)
        sums[0] += value
        sums[1 + bisect_left(child._upper_bounds, value)] += 1

    def count_and_observe(self, counter: Any, histogram: Any, value: float) -> None:
        """`inc(counter)` and `observe(histogram, value)` in one call: a request's count and
        latency, or a Redis round trip's."""
        counts = self._counts
        counts[counter] = counts.get(counter, 0.0) + 1.0
        sums = self._histograms.get(histogram)
        if sums is None:
            sums = self._histograms[histogram] = [0.0] * (len(histogram._upper_bounds) + 1)
        sums[0] += value
        sums[1 + bisect_left(histogram._upper_bounds, value)] += 1

    def flush(self) -> None:
        counts, self._counts = self._counts, {}
        histograms, self._histograms = self._histograms, {}
        for child, amount in counts.items():
            child.inc(amount)
        for child, sums in histograms.items():
            child._sum.inc(sums[0])
            for bucket, count in zip(child._buckets, sums[1:], strict=True):
                if count:
                    bucket.inc(count)
        HTTP_IN_FLIGHT.set(self.in_flight)
        LONG_POLL_WAITERS.set(self.long_poll_waiters)


BUFFER: Final = Buffer()
FLUSH_EVERY_S: Final = 1.0


async def flush_periodically() -> None:
    """Run for the life of a process (cancel it to stop; the last flush is the caller's)."""
    while True:
        await asyncio.sleep(FLUSH_EVERY_S)
        BUFFER.flush()


_redis_children: dict[str, tuple[Counter, Histogram]] = {}


def observe_redis_round_trip(operation: str, seconds: float) -> None:
    children = _redis_children.get(operation)
    if children is None:
        children = REDIS_ROUND_TRIPS.labels(operation), REDIS_DURATION.labels(operation)
        _redis_children[operation] = children
    BUFFER.count_and_observe(children[0], children[1], seconds)


def record_process_start() -> None:
    PROCESS_START.set(time.time())


def record_model(name: str, version: str) -> None:
    MODEL_INFO.labels(name, version).set(1)


_MODEL_BOUNDS: Final = MODEL_DURATION._upper_bounds
_QUEUE_BOUNDS: Final = QUEUE_WAIT._upper_bounds
_BATCH_BOUNDS: Final = BATCH_SIZE._upper_bounds


def observe_model_call(batch_size: int, seconds: float) -> None:
    # Both of every model call's observations in one call (the model's own is the sync path's
    # largest share of metrics work).
    histograms = BUFFER._histograms
    sums = histograms.get(MODEL_DURATION)
    if sums is None:
        sums = histograms[MODEL_DURATION] = [0.0] * (len(_MODEL_BOUNDS) + 1)
    sums[0] += seconds
    sums[1 + bisect_left(_MODEL_BOUNDS, seconds)] += 1
    sums = histograms.get(BATCH_SIZE)
    if sums is None:
        sums = histograms[BATCH_SIZE] = [0.0] * (len(_BATCH_BOUNDS) + 1)
    sums[0] += batch_size
    sums[1 + bisect_left(_BATCH_BOUNDS, batch_size)] += 1


def job_submitted() -> None:
    BUFFER.inc(JOBS_SUBMITTED)


def jobs_started(created_at: Iterable[float], now: float) -> None:
    """Workers took these jobs: their wait in the queue ended at `now` (epoch seconds)."""
    histograms = BUFFER._histograms
    sums = histograms.get(QUEUE_WAIT)
    if sums is None:
        sums = histograms[QUEUE_WAIT] = [0.0] * (len(_QUEUE_BOUNDS) + 1)
    for created in created_at:
        wait = now - created if now > created else 0.0
        sums[0] += wait
        sums[1 + bisect_left(_QUEUE_BOUNDS, wait)] += 1


_finished_children: dict[str, Any] = {}


def jobs_finished(finished: Iterable[tuple[str, float]]) -> None:
    """These jobs' final states are stored: count each by state, and its time since
    submission (`created_at`, epoch seconds)."""
    now = time.time()
    for state, created_at in finished:
        child = _finished_children.get(state)
        if child is None:
            child = _finished_children[state] = JOBS_FINISHED.labels(state)
        BUFFER.count_and_observe(child, TIME_TO_RESULT, max(0.0, now - created_at))


def job_started(created_at: float) -> None:
    """A worker took the job: its wait in the queue ends now (`created_at` is epoch seconds)."""
    jobs_started((created_at,), time.time())


def job_finished(state: str, created_at: float) -> None:
    """The job's final state is stored: count it, and its time since submission."""
    jobs_finished(((state, created_at),))


def jobs_reclaimed(count: int) -> None:
    BUFFER.inc(JOBS_RECLAIMED, count)


def job_dead_lettered() -> None:
    BUFFER.inc(JOBS_DEAD_LETTERED)


def webhook_attempted(outcome: str, seconds: float | None) -> None:
    """One delivery attempt ended as `outcome`, after `seconds` on the wire (None when none
    was sent: a URL refused at delivery)."""
    BUFFER.inc(WEBHOOK_DELIVERIES.labels(outcome))
    if seconds is not None:
        BUFFER.observe(WEBHOOK_DELIVERY_SECONDS, seconds)


def connection_timed_out(phase: str) -> None:
    """A connection cut because its request's `head` or `body` was late."""
    BUFFER.inc(HTTP_CONNECTIONS_TIMED_OUT.labels(phase))


def queue_sampled(backlog: int, oldest_age_s: float) -> None:
    QUEUE_BACKLOG.set(backlog)
    QUEUE_OLDEST_AGE.set(oldest_age_s)


@contextmanager
def long_poll_waiting() -> Iterator[None]:
    """`with long_poll_waiting(): ...` counts the request as a waiter while it waits."""
    BUFFER.long_poll_waiters += 1
    try:
        yield
    finally:
        BUFFER.long_poll_waiters -= 1


@contextmanager
def sse_streaming() -> Iterator[None]:
    """`with sse_streaming(): ...` counts an event stream while it is open (opened and closed
    far less often than requests: set at once, not buffered)."""
    SSE_STREAMS.inc()
    try:
        yield
    finally:
        SSE_STREAMS.dec()


def exposition() -> bytes:
    """The text a scrape gets: every worker's values when several share the directory (this
    process's buffer is flushed first; the others' are at most FLUSH_EVERY_S old)."""
    BUFFER.flush()
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)
