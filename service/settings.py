import base64
import binascii
import math
import os
from pathlib import Path
from typing import Literal, Self
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.redis_url import Mode, RedisTarget, parse_redis_url

# A guessable key is no key: refuse short ones at start-up.
MIN_API_KEY_CHARS = 16


class Settings(BaseSettings):
    """Every knob of the service, read from the environment once and passed down."""

    model_config = SettingsConfigDict(case_sensitive=False, frozen=True, protected_namespaces=())

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    web_concurrency: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    access_log: bool = False
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    graceful_timeout_s: int = Field(30, ge=1)
    # On SIGTERM, seconds to keep serving with /readyz at 503 before stopping (0: stop at once).
    drain_s: float = Field(0.0, ge=0)

    # One setting per topology: redis://, redis+sentinel://, redis+cluster://
    # (service/redis_url.py).
    redis_url: str | None = None
    redis_sentinel_password: str | None = Field(None, repr=False)
    # Shards of the job queue (streams, each in a hash slot of its own). 0: on a Cluster, one
    # per seed node that REDIS_URL lists (list the primaries), else 1. Every process of a
    # deployment must use the same count: it is read from configuration, never from Redis.
    stream_shards: int = Field(0, ge=0, le=1024)
    # Before answering 202, wait until this many replicas have the submit (WAIT); a submit
    # they did not confirm within REDIS_WAIT_TIMEOUT_MS is answered 503. 0: do not wait.
    redis_wait_replicas: int = Field(0, ge=0)
    redis_wait_timeout_ms: int = Field(500, ge=1)
    redis_socket_timeout_s: float = Field(2.0, gt=0)
    redis_max_connections: int = Field(64, ge=1)
    redis_autopipeline: bool = True
    # uvicorn's limit on open connections plus running requests per worker, past which it
    # answers 503 (None: no limit; docs/benchmarks.md says why that is the default).
    limit_concurrency: int | None = Field(None, ge=1)
    # Time for a request's head to arrive (from its first byte, or from the connection's
    # opening), and for its body (from the end of its head); past it the answer is 408.
    # A head fits in one packet: 10 s leaves room for TCP's retransmissions on a lossy link
    # (1 + 2 + 4 s). A body is at most MAX_BODY_BYTES (1 MiB): 30 s is 35 KB/s.
    header_timeout_s: float = Field(10.0, gt=0)
    body_timeout_s: float = Field(30.0, gt=0)
    fast_paths: bool = True
    redis_server_bin: Path | None = None
    data_dir: Path = Path(".data")
    key_prefix: str = "pred:"

    model: Literal["mock", "iris"] = "mock"
    model_path: Path = Path("artifacts/iris.joblib")
    mock_latency_ms: float = Field(0.0, ge=0)
    mock_cpu_ms: float = Field(0.0, ge=0)

    async_backend: Literal["stream", "background"] = "stream"
    # Chosen with `make bench-settings` (docs/benchmarks.md): with one consumer, the next batch
    # waits for the model call in progress, and the queue grows faster than it drains.
    worker_concurrency: int = Field(2, ge=0)
    max_batch_size: int = Field(64, ge=1)
    max_batch_wait_ms: float = Field(2.0, ge=0)
    claim_idle_ms: int = Field(15_000, ge=10)
    max_attempts: int = Field(3, ge=1)
    max_queue: int = Field(10_000, ge=1)
    stream_maxlen: int | None = Field(None, ge=1)
    max_wait_s: float = Field(30.0, gt=0)
    worker_block_ms: int = Field(1000, ge=1)
    queue_sample_s: float = Field(1.0, ge=0)
    idempotency_key_max_length: int = Field(255, ge=1)
    result_ttl_s: int = Field(86_400, ge=1)
    max_body_bytes: int = Field(1_048_576, ge=1)
    retry_after_s: int = Field(1, ge=1)

    # Batches: POST /predict/batch takes at most this many inputs (422 past it).
    batch_max_inputs: int = Field(1000, ge=1, le=100_000)
    # Server-Sent Events (GET /predict/{id}/events): a comment line this often while waiting,
    # so that proxies and clients keep an idle stream open.
    sse_heartbeat_s: float = Field(15.0, gt=0)

    # Webhooks (docs/async.md#webhooks): signed with WEBHOOK_SECRET (whsec_<base64>) as the
    # Standard Webhooks specification says; unset, a submit that asks for a webhook is 422.
    webhook_secret: str | None = Field(None, repr=False)
    # SSRF protection: https only, and no loopback, private, link-local or multicast address,
    # unless these allow them (the tests allow local receivers).
    webhook_allow_http: bool = False
    webhook_allow_private: bool = False
    # Comma-separated host names a webhook URL may name (unset: any public host).
    webhook_allowed_hosts: str = ""
    webhook_timeout_s: float = Field(10.0, gt=0)
    webhook_max_attempts: int = Field(8, ge=1)
    # The first retry waits about this long, each next one twice as long (with jitter), at
    # most WEBHOOK_BACKOFF_MAX_S.
    webhook_backoff_s: float = Field(1.0, gt=0)
    webhook_backoff_max_s: float = Field(600.0, gt=0)
    # Deliveries in flight at once per process (0: this process delivers none).
    webhook_concurrency: int = Field(16, ge=0)
    # A delivery left pending this long by a process that died is taken over by another.
    webhook_claim_idle_ms: int = Field(60_000, ge=10)

    metrics_enabled: bool = True
    prometheus_multiproc_dir: Path | None = None

    # Security: every control below is off by default (docs/security.md).
    api_keys: str = Field("", repr=False)
    metrics_require_key: bool = False
    rate_limit_per_s: float | None = Field(None, gt=0)
    rate_limit_burst: int | None = Field(None, ge=1)
    cors_allow_origins: str = ""
    max_input_chars: int = Field(10_000, ge=1)
    log_inputs: bool = False

    @property
    def api_key_list(self) -> list[str]:
        return _comma_separated(self.api_keys)

    @property
    def webhook_allowed_host_list(self) -> list[str]:
        return [host.lower() for host in _comma_separated(self.webhook_allowed_hosts)]

    @property
    def cors_origin_list(self) -> list[str]:
        return _comma_separated(self.cors_allow_origins)

    @property
    def effective_rate_limit_burst(self) -> int:
        """Requests a client may send at once before the rate applies: RATE_LIMIT_BURST, or
        one second's worth."""
        if self.rate_limit_burst is not None:
            return self.rate_limit_burst
        return max(1, math.ceil(self.rate_limit_per_s or 1))

    @property
    def effective_stream_maxlen(self) -> int:
        # Trimming must only ever drop acknowledged entries: keep the cap well above the
        # most entries admission control lets wait.
        return self.stream_maxlen or 10 * self.max_queue

    @model_validator(mode="after")
    def _stream_cap_above_queue(self) -> Self:
        if self.stream_maxlen is not None and self.stream_maxlen < 2 * self.max_queue:
            raise ValueError("STREAM_MAXLEN must be at least twice MAX_QUEUE")
        return self

    @field_validator("api_keys")
    @classmethod
    def _keys_are_long_printable_ascii(cls, value: str) -> str:
        for key in _comma_separated(value):
            if len(key) < MIN_API_KEY_CHARS or not all("!" <= c <= "~" for c in key):
                raise ValueError(
                    f"each API key must be at least {MIN_API_KEY_CHARS} printable ASCII "
                    "characters without spaces or commas"
                )
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _secret_is_whsec_base64(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        body = value.removeprefix("whsec_")
        try:
            raw = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
        except binascii.Error:
            raw = b""
        if not value.startswith("whsec_") or len(raw) < 24:
            raise ValueError(
                "WEBHOOK_SECRET must be whsec_ followed by at least 24 bytes in base64"
            )
        return value

    @model_validator(mode="after")
    def _webhooks_need_the_stream_backend(self) -> Self:
        if self.webhook_secret and self.async_backend != "stream":
            raise ValueError("WEBHOOK_SECRET needs ASYNC_BACKEND=stream")
        if self.webhook_claim_idle_ms < self.webhook_timeout_s * 1000:
            raise ValueError("WEBHOOK_CLAIM_IDLE_MS must be at least WEBHOOK_TIMEOUT_S")
        return self

    @model_validator(mode="after")
    def _burst_needs_a_rate(self) -> Self:
        if self.rate_limit_burst is not None and self.rate_limit_per_s is None:
            raise ValueError("RATE_LIMIT_BURST needs RATE_LIMIT_PER_S")
        return self

    @field_validator("redis_url")
    @classmethod
    def _known_scheme(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        parse_redis_url(value)  # a RedisUrlError (a ValueError) names the setting and the fault
        return value

    @property
    def redis_target(self) -> RedisTarget | None:
        return parse_redis_url(self.redis_url) if self.redis_url is not None else None

    @property
    def redis_mode(self) -> Mode:
        target = self.redis_target
        return target.mode if target is not None else "single"

    @property
    def effective_stream_shards(self) -> int:
        if self.stream_shards:
            return self.stream_shards
        target = self.redis_target
        return len(target.hosts) if target is not None and target.mode == "cluster" else 1

    @model_validator(mode="after")
    def _cluster_needs_the_stream_backend(self) -> Self:
        if self.redis_mode != "cluster":
            return self
        if self.async_backend != "stream":
            raise ValueError("ASYNC_BACKEND=background needs a single Redis, not a Cluster")
        if self.redis_wait_replicas and not self.redis_autopipeline:
            raise ValueError("REDIS_WAIT_REPLICAS on a Cluster needs REDIS_AUTOPIPELINE=true")
        return self

    @field_validator("key_prefix")
    @classmethod
    def _prefix_has_no_glob(cls, value: str) -> str:
        if not value or any(c in value for c in "*?[]"):
            raise ValueError("KEY_PREFIX must be non-empty and free of glob characters")
        return value


def _comma_separated(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def redacted_url(url: str | None) -> str | None:
    """REDIS_URL fit for a log line: without its password."""
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    user = f"{parts.username}:" if parts.username else ":"
    return urlunsplit(parts._replace(netloc=f"{user}***@{netloc}"))
