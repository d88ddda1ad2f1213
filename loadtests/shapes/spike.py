from typing import Any

from locust import LoadTestShape


class SpikeShape(LoadTestShape):
    """--spike-base-users, jumping to --spike-users at --spike-at-s for --spike-s, and back."""

    def tick(self) -> tuple[int, float] | None:
        options: Any = self.runner.environment.parsed_options  # type: ignore[union-attr]
        now = self.get_run_time()
        if now >= options.spike_total_s:
            return None
        if options.spike_at_s <= now < options.spike_at_s + options.spike_s:
            return options.spike_users, float(options.spike_users)  # all at once: a spike
        return options.spike_base_users, float(options.spike_users)
