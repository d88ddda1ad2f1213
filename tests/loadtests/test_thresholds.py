import pytest

from loadtests.thresholds import (
    RESULT,
    EntryFigures,
    Limit,
    Thresholds,
    ThresholdSpecError,
    breaches,
)


def entry(
    name: str, method: str = "POST", failures: int = 0, p95: float = 10, p99: float = 20
) -> EntryFigures:
    return EntryFigures(name, method, requests=100, failures=failures, p95_ms=p95, p99_ms=p99)


def test_a_limit_has_a_default_and_per_scenario_overrides() -> None:
    limit = Limit.parse("500, sync=50,long-poll=6000")
    assert limit.for_scenario("sync") == 50
    assert limit.for_scenario("long-poll") == 6000
    assert limit.for_scenario("submit-poll") == 500
    assert Limit.parse("").for_scenario("sync") is None


def test_a_limit_that_is_not_a_number_is_refused() -> None:
    with pytest.raises(ThresholdSpecError, match="sync=fast"):
        Limit.parse("sync=fast")


def test_latency_limits_apply_per_scenario() -> None:
    thresholds = Thresholds(p99=Limit.parse("100,sync=15"))
    found = breaches(thresholds, [entry("sync /predict"), entry("submit-poll /predict")])
    assert found == ["POST sync /predict: p99 20 ms > 15 ms"]


def test_time_to_result_has_its_own_limit() -> None:
    thresholds = Thresholds(p99=Limit.parse("1"), time_to_result_p99=Limit.parse("30"))
    found = breaches(thresholds, [entry("submit-poll time-to-result", RESULT, p99=40)])
    assert found == ["RESULT submit-poll time-to-result: time-to-result p99 40 ms > 30 ms"]


def test_failure_ratio_is_over_every_entry() -> None:
    entries = [entry("sync /predict", failures=3), entry("submit-poll /predict")]
    assert breaches(Thresholds(max_failure_ratio=0.02), entries) == []
    assert breaches(Thresholds(max_failure_ratio=0.01), entries) == [
        "failure ratio 0.0150 (3/200) > 0.01"
    ]
