"""The throughput figures a ratio of the tuned build to each reference is reported for."""

from collections.abc import Callable

from bench.results import BuildFigures

# Each figure by name (as bench/gate.toml names it), and where it lives in a build's figures.
FIGURES: dict[str, Callable[[BuildFigures], float]] = {
    "sync rps": lambda build: build.sync.rps,
    "async jobs/s submitted": lambda build: build.async_jobs.submitted_per_s,
    "async jobs/s finished": lambda build: build.async_jobs.finished_per_s,
    "poll rps": lambda build: build.poll.rps,
}
