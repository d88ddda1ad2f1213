"""Watch the load generator's own CPU: a saturated generator measures itself, not the server.

Locust samples its CPU every 10 s and warns above a fixed 90 %; a short run may never be sampled,
so this samples every second, against a limit of our choosing (--max-generator-cpu).
"""

import logging
from typing import Any

import gevent
import psutil
from locust import events
from locust.env import Environment
from locust.runners import MasterRunner

from loadtests.run_stats import RUN

_SAMPLE_EVERY_S = 1.0
_log = logging.getLogger(__name__)
_monitor: gevent.Greenlet | None = None


def _watch(limit: float) -> None:
    process = psutil.Process()
    process.cpu_percent()  # the first reading is always 0: it starts the interval
    warned = False
    while True:
        gevent.sleep(_SAMPLE_EVERY_S)
        usage = process.cpu_percent()
        RUN.generator_cpu_peak = max(RUN.generator_cpu_peak, usage)
        if usage > limit and not warned:
            _log.warning("event=generator_cpu_saturated cpu_percent=%.0f limit=%.0f", usage, limit)
            warned = True


@events.test_start.add_listener
def _start(environment: Environment, **_: Any) -> None:
    global _monitor
    if isinstance(environment.runner, MasterRunner):
        return  # the workers generate the load, and watch themselves
    assert environment.parsed_options is not None
    _monitor = gevent.spawn(_watch, environment.parsed_options.max_generator_cpu)


@events.test_stop.add_listener
def _stop(**_: Any) -> None:
    global _monitor
    if _monitor is not None:
        _monitor.kill(block=False)
        _monitor = None
