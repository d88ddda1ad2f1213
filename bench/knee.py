"""The knee of a throughput-vs-concurrency curve: the highest load whose p99 stays under a
target. Past it, more concurrency buys queueing, not throughput."""

from collections.abc import Sequence

from bench.results import SweepPoint


def find_knee(points: Sequence[SweepPoint], p99_target_ms: float) -> SweepPoint | None:
    """The point with the most throughput among those under the target; None if none is."""
    within = [p for p in points if p.p99_ms <= p99_target_ms]
    return max(within, key=lambda p: p.rps, default=None)
