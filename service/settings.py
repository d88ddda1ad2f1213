import os
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of the service, read from the environment once and passed down."""

    model_config = SettingsConfigDict(case_sensitive=False, frozen=True, protected_namespaces=())

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    web_concurrency: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    access_log: bool = False
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    graceful_timeout_s: int = Field(30, ge=1)

    redis_url: str | None = None
    redis_socket_timeout_s: float = Field(2.0, gt=0)
    redis_max_connections: int = Field(64, ge=1)
    redis_server_bin: Path | None = None
    data_dir: Path = Path(".data")
    key_prefix: str = "pred:"

    model: Literal["mock", "iris"] = "mock"
    model_path: Path = Path("artifacts/iris.joblib")
    mock_latency_ms: float = Field(0.0, ge=0)
    mock_cpu_ms: float = Field(0.0, ge=0)

    async_backend: Literal["background"] = "background"
    result_ttl_s: int = Field(86_400, ge=1)
    max_body_bytes: int = Field(1_048_576, ge=1)
    retry_after_s: int = Field(1, ge=1)

    metrics_enabled: bool = True
    prometheus_multiproc_dir: Path | None = None

    @field_validator("redis_url")
    @classmethod
    def _known_scheme(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("REDIS_URL must start with redis://, rediss:// or unix://")
        return value

    @field_validator("key_prefix")
    @classmethod
    def _prefix_has_no_glob(cls, value: str) -> str:
        if not value or any(c in value for c in "*?[]"):
            raise ValueError("KEY_PREFIX must be non-empty and free of glob characters")
        return value
