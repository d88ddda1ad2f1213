"""What `make bench` and the gate run, from BENCH_* environment variables (see the README)."""

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class BenchConfig(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BENCH_", frozen=True)

    # Seconds per throughput figure (BENCH_DURATION); longer runs average out more noise.
    duration: float = Field(4.0, gt=0)
    connections: int = Field(32, ge=1)
    sweep: Annotated[tuple[int, ...], NoDecode] = (1, 4, 16, 64, 256)
    sweep_duration_s: float = Field(2.0, gt=0)
    p99_target_ms: float = Field(25.0, gt=0)
    ttr_rate: float = Field(20.0, gt=0)
    ttr_duration_s: float = Field(4.0, gt=0)
    ttr_rounds: int = Field(3, ge=1)
    ttr_model_ms: float = Field(50.0, ge=0)
    ttr_strategies: Annotated[tuple[str, ...], NoDecode] = (
        "poll:10ms",
        "poll:50ms",
        "poll:250ms",
        "longpoll:2s",
        "sse",
        "webhook",
    )
    fixed_rate_duration_s: float = Field(5.0, gt=0)
    fixed_rate_connections: int = Field(256, ge=1)
    scaling_connections: int = Field(64, ge=1)
    model_runs: Annotated[tuple[str, ...], NoDecode] = ("MOCK_LATENCY_MS=20", "MOCK_CPU_MS=1")
    iris: bool = True
    micro: bool = True
    # Interleaved rounds of the throughput figures; the bars are on the median same-round ratio.
    rounds: int = Field(5, ge=1)
    # make bench counts instructions per request under callgrind (valgrind) for the
    # instruction bar; 0 skips it (the bar is then "not measured").
    instructions: bool = True
    # Cores kept out of deep idle states during the run (bench/idle.py), for every build.
    keep_cores_awake: bool = True
    reports_dir: Path = Path("reports")
    # Every `make bench` appends its figures here (bench/history.py); the report draws them.
    history: Path = Path("reports/history.jsonl")

    @field_validator("sweep", "ttr_strategies", "model_runs", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(item.strip() for item in value.split(",") if item.strip())
        return value
