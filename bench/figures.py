"""The throughput figures a ratio of the tuned build to each reference is reported for."""

# Where each figure lives in a build's results: (scenario, key).
FIGURES: dict[str, tuple[str, str]] = {
    "sync rps": ("sync", "rps"),
    "async jobs/s submitted": ("async", "submitted_per_s"),
    "async jobs/s finished": ("async", "finished_per_s"),
    "poll rps": ("poll", "rps"),
}
