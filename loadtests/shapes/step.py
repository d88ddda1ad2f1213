from typing import Any

from locust import LoadTestShape


class StepShape(LoadTestShape):
    """--steps steps of --step-users more users each, --step-s seconds apiece, then stop."""

    def tick(self) -> tuple[int, float] | None:
        options: Any = self.runner.environment.parsed_options  # type: ignore[union-attr]
        step = int(self.get_run_time() // options.step_s)
        if step >= options.steps:
            return None
        users = (step + 1) * options.step_users
        return users, float(options.step_users)  # each step's users arrive within a second
