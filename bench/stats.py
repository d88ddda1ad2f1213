"""The percentile every client of the harness reports (wrk reports its own), and the interval
`make bench-compare` puts around a median ratio."""

import random
import statistics
from collections.abc import Sequence


def percentile(ordered: Sequence[float], q: float, empty: float = float("nan")) -> float:
    """The q-th percentile (0 to 100) of values sorted in ascending order, by nearest rank
    (the value at rank floor(n * q / 100)); `empty` when there are none."""
    if not ordered:
        return empty
    return ordered[min(len(ordered) - 1, int(len(ordered) * q / 100))]


def bootstrap_median_interval(
    values: Sequence[float], confidence: float = 0.95, resamples: int = 10_000, seed: int = 0
) -> tuple[float, float]:
    """A percentile-bootstrap interval of the median of `values`: the median of `resamples`
    samples drawn with replacement, cut at the two tails that leave `confidence` between them.
    Seeded, so the same values give the same interval in every report."""
    if not values:
        return (float("nan"), float("nan"))
    rng = random.Random(seed)  # noqa: S311 (resampling, not cryptography)
    medians = sorted(
        statistics.median(rng.choices(values, k=len(values))) for _ in range(resamples)
    )
    tail = (1 - confidence) / 2 * 100
    return (percentile(medians, tail), percentile(medians, 100 - tail))
