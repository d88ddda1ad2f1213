import logging
from typing import Any

from locust import LoadTestShape
from locust.stats import calculate_response_time_percentile

from loadtests.run_stats import RUN

_log = logging.getLogger(__name__)


class KneeShape(LoadTestShape):
    """Add --knee-step-users every --knee-step-s until a step's p99 or failure ratio crosses its
    limit (--knee-p99-ms, --knee-failure-ratio): the knee is the last step that stayed within.

    Each step is judged on its own requests (all entries, time-to-result included), not on the
    run so far, so that one bad step is not averaged away by the good ones before it.
    """

    def __init__(self) -> None:
        super().__init__()
        self.step = 0
        self.step_requests = 0
        self.step_failures = 0
        self.step_times: dict[int, int] = {}
        self.within: dict[str, Any] | None = None

    def _judge_step(self, options: Any, users: int) -> dict[str, Any] | None:
        """The step that just ended; None if it stayed within the limits."""
        total = self.runner.stats.total  # type: ignore[union-attr]
        requests = total.num_requests - self.step_requests
        failures = total.num_failures - self.step_failures
        times = {ms: n - self.step_times.get(ms, 0) for ms, n in total.response_times.items()}
        self.step_requests, self.step_failures = total.num_requests, total.num_failures
        self.step_times = dict(total.response_times)
        p99 = calculate_response_time_percentile(times, requests, 0.99) if requests else 0
        ratio = failures / requests if requests else 0.0
        figures = {
            "users": users,
            "requests_per_s": requests / options.knee_step_s,
            "p99_ms": p99,
            "failure_ratio": ratio,
        }
        if p99 > options.knee_p99_ms or ratio > options.knee_failure_ratio:
            return figures
        self.within = figures
        return None

    def tick(self) -> tuple[int, float] | None:
        options: Any = self.runner.environment.parsed_options  # type: ignore[union-attr]
        step = int(self.get_run_time() // options.knee_step_s)
        if step > self.step:
            crossed = self._judge_step(options, (self.step + 1) * options.knee_step_users)
            self.step = step
            if crossed is not None:
                RUN.knee = {"knee": self.within, "crossed_at": crossed}
                _log.info("event=knee_found knee=%s crossed_at=%s", self.within, crossed)
                return None
        users = (self.step + 1) * options.knee_step_users
        if users > options.knee_max_users:
            RUN.knee = {"knee": None, "crossed_at": None, "last_within": self.within}
            _log.info(
                "event=knee_not_found max_users=%s last_within=%s",
                options.knee_max_users,
                self.within,
            )
            return None
        return users, float(options.knee_step_users)
