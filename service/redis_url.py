"""Which Redis the service talks to, from the one setting REDIS_URL:

- `redis://`, `rediss://` (TLS), `unix://`: a single Redis, redis-py's own URL form;
- `redis+sentinel://[user:password@]host:port,host:port/<primary name>[/db]` (and
  `rediss+sentinel://`): Sentinel, which names the primary and follows its failovers; the
  credentials are the primary's (sentinels themselves take REDIS_SENTINEL_PASSWORD);
- `redis+cluster://[user:password@]host:port,host:port` (and `rediss+cluster://`): a Redis
  Cluster, from any of its nodes (seeds).

Query parameters (`?ssl_ca_certs=...&ssl_cert_reqs=required`, ...) are redis-py's connection
options, as `from_url` takes them, in every mode.
"""

from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlsplit

Mode = Literal["single", "sentinel", "cluster"]

_SCHEMES: dict[str, tuple[Mode, bool]] = {
    "redis": ("single", False),
    "rediss": ("single", True),
    "unix": ("single", False),
    "redis+sentinel": ("sentinel", False),
    "rediss+sentinel": ("sentinel", True),
    "redis+cluster": ("cluster", False),
    "rediss+cluster": ("cluster", True),
}
SCHEMES = tuple(f"{scheme}://" for scheme in _SCHEMES)
_DEFAULT_PORTS = {"single": 6379, "sentinel": 26379, "cluster": 6379}
# Query options that are numbers or flags: parse_qsl gives text, redis-py wants values.
_FLOAT_OPTIONS = {"socket_timeout", "socket_connect_timeout", "health_check_interval"}
_BOOL_OPTIONS = {"ssl_check_hostname"}


class RedisUrlError(ValueError):
    pass


@dataclass(frozen=True)
class RedisTarget:
    mode: Mode
    url: str
    tls: bool = False
    hosts: tuple[tuple[str, int], ...] = ()  # sentinels or cluster seeds
    primary_name: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    options: dict[str, str | float | bool] = field(default_factory=dict)

    def connection_kwargs(self) -> dict[str, Any]:
        """The credentials, TLS and query options, as redis-py's clients take them."""
        kwargs: dict[str, Any] = {"username": self.username, "password": self.password}
        if self.tls:
            kwargs["ssl"] = True
        return {**kwargs, **self.options}


def parse_redis_url(url: str) -> RedisTarget:
    scheme, _, _ = url.partition("://")
    if scheme not in _SCHEMES:
        raise RedisUrlError(f"REDIS_URL must start with one of {', '.join(SCHEMES)}")
    mode, tls = _SCHEMES[scheme]
    if mode == "single":
        return RedisTarget("single", url, tls)
    parts = urlsplit(url)
    credentials, _, hostlist = parts.netloc.rpartition("@")
    username, password = None, None
    if credentials:
        user, has_password, secret = credentials.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if has_password else None
    hosts = tuple(_host_port(item, _DEFAULT_PORTS[mode]) for item in hostlist.split(",") if item)
    if not hosts:
        raise RedisUrlError(f"REDIS_URL ({scheme}://) names no host:port")
    path = [segment for segment in parts.path.split("/") if segment]
    primary_name, db = "", 0
    if mode == "sentinel":
        if not path:
            raise RedisUrlError(
                "REDIS_URL (redis+sentinel://) must name the primary: "
                "redis+sentinel://host:port,host:port/<primary name>"
            )
        primary_name = unquote(path[0])
        db = _db(path[1:])
    elif path:
        raise RedisUrlError("REDIS_URL (redis+cluster://) takes no path: a Cluster has one db")
    return RedisTarget(
        mode,
        url,
        tls,
        hosts,
        primary_name,
        db,
        username,
        password,
        _options(parts.query),
    )


def _host_port(item: str, default_port: int) -> tuple[str, int]:
    host, _, port = item.rpartition(":") if ":" in item else (item, "", "")
    host = host.strip("[]")  # an IPv6 literal
    if not host:
        raise RedisUrlError(f"REDIS_URL: {item!r} is not host:port")
    if not port:
        return host, default_port
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise RedisUrlError(f"REDIS_URL: {item!r} has no valid port")
    return host, int(port)


def _db(path: list[str]) -> int:
    if not path:
        return 0
    if len(path) > 1 or not path[0].isdigit():
        raise RedisUrlError("REDIS_URL: the path after the primary's name is a db number")
    return int(path[0])


def _options(query: str) -> dict[str, str | float | bool]:
    options: dict[str, str | float | bool] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name in _FLOAT_OPTIONS:
            try:
                options[name] = float(value)
            except ValueError as exc:
                raise RedisUrlError(f"REDIS_URL: {name}={value!r} is not a number") from exc
        elif name in _BOOL_OPTIONS:
            options[name] = value.lower() in ("1", "true", "yes", "on")
        else:
            options[name] = value
    return options
