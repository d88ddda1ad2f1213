"""Pass/fail limits of a run, and the breaches of a run's figures.

A latency limit is a number of milliseconds for every scenario, optionally overridden per
scenario: "500" or "500,sync=50,long-poll=6000". An entry's scenario is the first word of its
name ("sync /predict" belongs to "sync").
"""

from dataclasses import dataclass, field

RESULT = "RESULT"  # the request type of time-to-result entries


class ThresholdSpecError(ValueError):
    pass


@dataclass(frozen=True)
class Limit:
    default_ms: float | None = None
    by_scenario: dict[str, float] = field(default_factory=dict)

    def for_scenario(self, scenario: str) -> float | None:
        return self.by_scenario.get(scenario, self.default_ms)

    @classmethod
    def parse(cls, spec: str | None) -> "Limit":
        if not spec or not spec.strip():
            return cls()
        default: float | None = None
        by_scenario: dict[str, float] = {}
        for part in (p.strip() for p in spec.split(",") if p.strip()):
            scenario, equals, number = part.rpartition("=")
            try:
                value = float(number)
            except ValueError:
                raise ThresholdSpecError(f"not a number of ms: {part!r} in {spec!r}") from None
            if equals:
                by_scenario[scenario.strip()] = value
            else:
                default = value
        return cls(default, by_scenario)


@dataclass(frozen=True)
class Thresholds:
    max_failure_ratio: float | None = None
    p95: Limit = Limit()
    p99: Limit = Limit()
    time_to_result_p99: Limit = Limit()


@dataclass(frozen=True)
class EntryFigures:
    """One Locust stats entry, reduced to what the thresholds look at."""

    name: str
    method: str
    requests: int
    failures: int
    p95_ms: float
    p99_ms: float

    @property
    def scenario(self) -> str:
        return self.name.split(" ", 1)[0]


def breaches(thresholds: Thresholds, entries: list[EntryFigures]) -> list[str]:
    """Every limit the figures cross, each as a sentence; empty when the run passes."""
    found: list[str] = []
    requests = sum(e.requests for e in entries)
    failures = sum(e.failures for e in entries)
    if thresholds.max_failure_ratio is not None and requests:
        ratio = failures / requests
        if ratio > thresholds.max_failure_ratio:
            most = thresholds.max_failure_ratio
            found.append(f"failure ratio {ratio:.4f} ({failures}/{requests}) > {most}")
    for entry in entries:
        if not entry.requests:
            continue
        if entry.method == RESULT:
            checks = [("time-to-result p99", entry.p99_ms, thresholds.time_to_result_p99)]
        else:
            checks = [("p95", entry.p95_ms, thresholds.p95), ("p99", entry.p99_ms, thresholds.p99)]
        for label, value, limit in checks:
            limit_ms = limit.for_scenario(entry.scenario)
            if limit_ms is not None and value > limit_ms:
                found.append(
                    f"{entry.method} {entry.name}: {label} {value:.0f} ms > {limit_ms:g} ms"
                )
    return found
