"""Waiting, within a deadline, for what a test cannot be told about (a consumer's work, a
delivery's settling): polled, so that a test waits no longer than the condition takes."""

import time
from collections.abc import Callable


def wait_until(
    condition: Callable[[], object], *, timeout_s: float = 10, what: str = "the condition"
) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s:g} s"
        time.sleep(0.01)
