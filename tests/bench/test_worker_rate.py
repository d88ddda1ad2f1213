"""bench.worker_rate: one real worker process drains jobs submitted to a real Redis."""

import pytest

from bench.worker_rate import measure

pytestmark = pytest.mark.served


def test_a_worker_is_timed_on_the_jobs_it_finished() -> None:
    rate = measure(jobs=1_000, mock_latency_ms=1.0)
    # The jobs finished by the time the first was seen are not timed: the worker's first batches.
    assert 0 < rate.jobs < 1_000
    assert rate.seconds > 0
    assert rate.jobs_per_s == rate.jobs / rate.seconds
