"""What a run measures beyond Locust's own stats, merged from the workers like Locust's.

- the open loop's latency from each arrival's intended start, in an HdrHistogram (1 us to 1 h,
  3 significant digits), not Locust's rounded response times;
- results and polls per scenario, for polls per result;
- the load generator's peak CPU, to tell a run that measured the generator itself;
- where the knee-finding ramp stopped, and why.

Workers send what they measured since their last report with each of Locust's reports, and start
afresh; the master (or the one local process) adds it all up.
"""

from collections import Counter
from typing import Any

from hdrh.histogram import HdrHistogram
from locust import events

_LOWEST_US = 1
_HIGHEST_US = 3_600_000_000
_SIGNIFICANT_DIGITS = 3
_REPORT_KEY = "prediction_service_run_stats"


def _histogram() -> HdrHistogram:
    return HdrHistogram(_LOWEST_US, _HIGHEST_US, _SIGNIFICANT_DIGITS)


class RunStats:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.corrected = _histogram()
        self.unfinished_arrivals = 0
        self.results: Counter[str] = Counter()
        self.polls: Counter[str] = Counter()
        self.generator_cpu_peak = 0.0
        self.knee: dict[str, Any] | None = None

    def record_from_intended_start(self, seconds: float) -> None:
        self.corrected.record_value(min(max(int(seconds * 1e6), _LOWEST_US), _HIGHEST_US))

    def count_result(self, scenario: str, polls: int) -> None:
        self.results[scenario] += 1
        self.polls[scenario] += polls

    def corrected_percentiles_ms(self, percentiles: list[float]) -> dict[str, float]:
        return {
            f"p{p:g}": self.corrected.get_value_at_percentile(p) / 1000 for p in percentiles
        } | {"max": self.corrected.get_max_value() / 1000}

    def polls_per_result(self) -> dict[str, float]:
        return {s: self.polls[s] / n for s, n in self.results.items() if n}

    def to_report(self) -> dict[str, Any]:
        return {
            "corrected": self.corrected.encode().decode()
            if self.corrected.get_total_count()
            else None,
            "unfinished_arrivals": self.unfinished_arrivals,
            "results": dict(self.results),
            "polls": dict(self.polls),
            "generator_cpu_peak": self.generator_cpu_peak,
        }

    def merge(self, report: dict[str, Any]) -> None:
        if report["corrected"]:
            self.corrected.decode_and_add(report["corrected"].encode())
        self.unfinished_arrivals += report["unfinished_arrivals"]
        self.results.update(report["results"])
        self.polls.update(report["polls"])
        self.generator_cpu_peak = max(self.generator_cpu_peak, report["generator_cpu_peak"])


# One per process: Locust runs one Environment per process, and this lives as long as it does.
RUN = RunStats()


@events.test_start.add_listener
def _start_afresh(**_: Any) -> None:
    RUN.reset()


@events.report_to_master.add_listener
def _send_to_master(data: dict[str, Any], **_: Any) -> None:
    data[_REPORT_KEY] = RUN.to_report()
    RUN.reset()


@events.worker_report.add_listener
def _add_from_worker(data: dict[str, Any], **_: Any) -> None:
    if _REPORT_KEY in data:
        RUN.merge(data[_REPORT_KEY])
