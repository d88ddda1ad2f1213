"""What the harness measured, as it is reported: the side-by-side run and its parts
(results.json), the settings experiments (settings.json) and the instruction counts
(instructions.json). Plain data: the report reads these, and nothing else of a run."""

from dataclasses import dataclass, field
from typing import Literal

import orjson

from bench.config import BenchConfig
from bench.lineup import BuildName, Reference


@dataclass(frozen=True, slots=True)
class LoadRun:
    """One wrk run: throughput, the latency distribution, and the CPU evidence."""

    scenario: str
    connections: int
    duration_s: float
    requests: int
    errors: dict[str, int]
    latency_cdf_ms: tuple[tuple[float, float], ...]  # (percentile, latency in ms)
    server_core_busy: float
    load_core_busy: float
    generator_cpu: float  # CPU seconds wrk used per second of the run
    # Derived from the fields above; fields rather than properties, so that the JSON holds them.
    rps: float = field(init=False)
    p50_ms: float = field(init=False)
    p90_ms: float = field(init=False)
    p99_ms: float = field(init=False)
    p999_ms: float = field(init=False)

    def __post_init__(self) -> None:
        # A frozen dataclass can set its own fields only through object.__setattr__.
        object.__setattr__(self, "rps", self.requests / self.duration_s)
        object.__setattr__(self, "p50_ms", self.percentile_ms(50))
        object.__setattr__(self, "p90_ms", self.percentile_ms(90))
        object.__setattr__(self, "p99_ms", self.percentile_ms(99))
        object.__setattr__(self, "p999_ms", self.percentile_ms(99.9))

    def percentile_ms(self, q: float) -> float:
        return next(ms for p, ms in self.latency_cdf_ms if p >= q)


@dataclass(frozen=True, slots=True)
class AsyncRun:
    """Async submits under wrk, and how fast their jobs finished (from the job hashes' clocks)."""

    submits: LoadRun
    jobs: int
    finished: int
    finished_per_s: float
    submitted_per_s: float = field(init=False)  # the submits' rps, under the figure's name

    def __post_init__(self) -> None:
        object.__setattr__(self, "submitted_per_s", self.submits.rps)


@dataclass(frozen=True, slots=True)
class Rounds:
    """Every round of one build's throughput runs; the median of each is its figure."""

    sync: tuple[LoadRun, ...]
    async_jobs: tuple[AsyncRun, ...]
    poll: tuple[LoadRun, ...]


@dataclass(frozen=True, slots=True)
class SweepPoint:
    connections: int
    rps: float
    p99_ms: float


@dataclass(frozen=True, slots=True)
class Sweep:
    """Sync throughput and p99 at each concurrency level, and the knee (none: no level kept
    p99 under the target)."""

    p99_target_ms: float
    points: tuple[SweepPoint, ...]
    knee: SweepPoint | None


# How a client learns a job's result: short polls, long-poll, Server-Sent Events, a webhook.
StrategyKind = Literal["poll", "long-poll", "sse", "webhook"]


@dataclass(frozen=True, slots=True)
class TimeToResult:
    """From a job's scheduled submit to its result in hand, for one strategy; the jobs of
    every round together."""

    strategy: str
    jobs: int
    completed: int
    # False: the build answered a long-poll at once (it ignores `wait`), has no event stream,
    # or delivered no webhook
    supported: bool
    p50_ms: float
    p90_ms: float
    p99_ms: float
    # Requests per result besides the submit: polls (short or long), the one event stream, or
    # the webhook's deliveries (at least once: a redelivery that arrives within the round counts).
    polls_per_result: float
    client_lag_p99_ms: float
    rounds: int = 1
    kind: StrategyKind = "poll"


@dataclass(frozen=True, slots=True)
class RedisWorkPerRequest:
    round_trips: float
    commands: dict[str, float]


@dataclass(frozen=True, slots=True)
class RedisWorkCounts:
    """Redis round trips and commands per API request, each endpoint counted on its own; the
    completion is the async backend's later work for a submitted job."""

    requests: int
    sync: RedisWorkPerRequest
    submit: RedisWorkPerRequest
    completion: RedisWorkPerRequest
    poll: RedisWorkPerRequest

    def by_endpoint(self) -> tuple[tuple[str, RedisWorkPerRequest], ...]:
        return (
            ("sync", self.sync),
            ("submit", self.submit),
            ("completion", self.completion),
            ("poll", self.poll),
        )


@dataclass(frozen=True, slots=True)
class BuildFigures:
    """One build's figures in a run; the scenarios only `make bench` runs are None in a gate
    run."""

    sync: LoadRun
    async_jobs: AsyncRun
    poll: LoadRun
    rounds: Rounds
    sweep: Sweep | None = None
    redis_work: RedisWorkCounts | None = None
    time_to_result: tuple[TimeToResult, ...] | None = None
    models: dict[str, LoadRun] | None = None  # sync runs, by model environment

    def load_runs(self) -> tuple[LoadRun, ...]:
        """The sync, async and poll throughput runs."""
        return (self.sync, self.async_jobs.submits, self.poll)


@dataclass(frozen=True, slots=True)
class Ratio:
    """One figure of the tuned build divided by the same figure of each reference: the median
    of the ratios of the same rounds (each build measured back to back in a round), and their
    range. A round's ratio cancels what slowed the machine for that whole round; the range
    shows what it did not."""

    vs_seed: float
    vs_bound: float
    seed_range: tuple[float, float] = (float("nan"), float("nan"))
    bound_range: tuple[float, float] = (float("nan"), float("nan"))
    rounds: int = 1

    def vs(self, reference: Reference) -> float:
        return self.vs_seed if reference == "seed" else self.vs_bound

    def range_vs(self, reference: Reference) -> tuple[float, float]:
        return self.seed_range if reference == "seed" else self.bound_range


@dataclass(frozen=True, slots=True)
class FixedRateRun:
    """Latency at a fixed request rate, open loop, from each request's scheduled time."""

    target_rate: float
    achieved_rate: float
    duration_s: float
    scheduled: int
    completed: int
    errors: dict[str, int]  # non-2xx answers by status, and requests with no answer
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    connections: int
    client_lag_p50_ms: float
    client_lag_p99_ms: float


@dataclass(frozen=True, slots=True)
class KneeShare:
    """A fixed rate taken as a share of a build's knee, and how it was arrived at."""

    rate: float
    basis: str


@dataclass(frozen=True, slots=True)
class FixedRateLatency:
    """Every build at one rate, a share of the seed's knee; and the tuned build at the same
    share of its own knee."""

    load: KneeShare
    builds: dict[BuildName, FixedRateRun]
    tuned_own_load: KneeShare
    tuned_at_own_load: FixedRateRun


@dataclass(frozen=True, slots=True)
class WorkerScaling:
    one_worker: LoadRun
    two_workers: LoadRun
    factor: float  # two workers' rps over one worker's


@dataclass(frozen=True, slots=True)
class Scaling:
    """Sync throughput with 1 and 2 workers, nothing pinned."""

    connections: int
    placement: str
    builds: dict[BuildName, WorkerScaling]


Verdict = Literal["met", "NOT met", "reported", "not measured"]


@dataclass(frozen=True, slots=True)
class Bar:
    """A target the tuned build is held to, what this run measured, and whether it met it."""

    name: str
    target: str
    measured: str
    verdict: Verdict


@dataclass(frozen=True, slots=True)
class GateRow:
    figure: str
    ratio: float  # tuned over seed
    floor: float
    ok: bool


@dataclass(frozen=True, slots=True)
class GateVerdict:
    passed: bool
    rows: tuple[GateRow, ...]


@dataclass(frozen=True, slots=True)
class RunMeta:
    command: str  # the make target that ran
    started: str  # the report folder's name
    seconds: float
    placement: str
    config: BenchConfig
    wrk: str  # wrk's version line
    idle_states: str = ""  # whether the cores were kept awake (bench/idle.py)


@dataclass(frozen=True, slots=True)
class SideBySideRun:
    """Everything one `make bench` or `make gate` run measured and decided; results.json.
    The fixed-rate and scaling scenarios are `make bench`'s, the gate's verdict `make gate`'s."""

    builds: dict[BuildName, BuildFigures]
    ratios: dict[str, Ratio]  # by figure (figures.FIGURES)
    bars: tuple[Bar, ...]
    meta: RunMeta
    fixed_rate: FixedRateLatency | None = None
    scaling: Scaling | None = None
    gate: GateVerdict | None = None
    instructions: "InstructionsRun | None" = None  # make bench's count, next to the throughput


@dataclass(frozen=True, slots=True)
class MicroBenchmark:
    """One pytest-benchmark result of bench/micro (its own file, micro.json, holds them all)."""

    group: str | None
    name: str
    mean_s: float
    ops: float


@dataclass(frozen=True, slots=True)
class SyncThroughput:
    """A settings variant's sync throughput under wrk; errors: answers that were not 2xx."""

    rps: float
    p50_ms: float
    p99_ms: float
    errors: int

    def cells(self) -> dict[str, float]:
        return {
            "rps": self.rps,
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "errors": self.errors,
        }


@dataclass(frozen=True, slots=True)
class ConnectionBurst:
    """Clients that connected at the same instant, one request each: how many got no 200, and
    the time from connect to answer of those that did."""

    connections: int
    failed: int
    p50_ms: float
    p99_ms: float
    max_ms: float

    def cells(self) -> dict[str, float]:
        return {
            "failed": self.failed,
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "max_ms": self.max_ms,
        }


@dataclass(frozen=True, slots=True)
class JobRates:
    submitted_per_s: float
    finished_per_s: float

    def cells(self) -> dict[str, float]:
        return {"submitted_per_s": self.submitted_per_s, "finished_per_s": self.finished_per_s}


@dataclass(frozen=True, slots=True)
class PollingLatency:
    """Time to result, polling every 10 ms."""

    ttr_p50_ms: float
    ttr_p99_ms: float

    def cells(self) -> dict[str, float]:
        return {"ttr_p50_ms": self.ttr_p50_ms, "ttr_p99_ms": self.ttr_p99_ms}


# What a settings experiment measures of each variant.
VariantFigures = SyncThroughput | ConnectionBurst | JobRates | PollingLatency


@dataclass(frozen=True, slots=True)
class ExperimentResult:
    """One setting measured against its alternatives: a row per variant."""

    setting: str
    question: str
    default: str  # the label of the variant the service ships with
    columns: tuple[str, ...]
    rows: dict[str, VariantFigures]  # by variant label


@dataclass(frozen=True, slots=True)
class SettingsRun:
    """What `make bench-settings` measured; settings.json."""

    placement: str
    experiments: tuple[ExperimentResult, ...]


@dataclass(frozen=True, slots=True)
class InstructionCount:
    """CPU instructions a build spent on a measured run, per unit of work: a request answered,
    or a job finished."""

    units: int
    instructions: int
    per_unit: float

    @classmethod
    def of(cls, units: int, instructions: int) -> "InstructionCount":
        return cls(units, instructions, instructions / units if units else float("nan"))


@dataclass(frozen=True, slots=True)
class InstructionsRun:
    """What `make bench-instructions` counted; instructions.json. Keys are "<build> <path>"
    ("tuned sync", "bound poll", ...)."""

    counts: dict[str, InstructionCount]


@dataclass(frozen=True, slots=True)
class InstructionRow:
    """One counted path against its committed baseline."""

    path: str
    baseline: float
    measured: float
    change: float  # measured / baseline - 1
    ok: bool
    tolerance: float  # how far the count may move either way


@dataclass(frozen=True, slots=True)
class InstructionVerdict:
    passed: bool
    tolerance: float
    rows: tuple[InstructionRow, ...]


def _config_as_json(value: object) -> object:
    # orjson writes dataclasses itself; the run's configuration is the one pydantic model.
    if isinstance(value, BenchConfig):
        return value.model_dump(mode="json")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def to_json(result: object) -> bytes:
    """A result as the report folder holds it: indented JSON."""
    return orjson.dumps(result, default=_config_as_json, option=orjson.OPT_INDENT_2)
