"""The percentile every client of the harness reports (wrk reports its own)."""

from collections.abc import Sequence


def percentile(ordered: Sequence[float], q: float, empty: float = float("nan")) -> float:
    """The q-th percentile (0 to 100) of values sorted in ascending order, by nearest rank
    (the value at rank floor(n * q / 100)); `empty` when there are none."""
    if not ordered:
        return empty
    return ordered[min(len(ordered) - 1, int(len(ordered) * q / 100))]
