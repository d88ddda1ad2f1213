"""A server as a child process: start it, wait until it is ready, stop it and its children.

The tests, the benchmark harness and the load-test launcher all start servers this way. It
uses the standard library only, so that a program that merely starts the service (a load
generator's launcher) needs none of the service's dependencies.
"""

import os
import random
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path


class NotReadyError(RuntimeError):
    """The server exited, or did not answer in time; the message ends with its log."""


@dataclass(frozen=True, slots=True)
class ServerProcess:
    url: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _ephemeral_ports() -> range:
    """The ports the kernel picks a connection's local port from (Linux's ip_local_port_range;
    elsewhere Linux's default, which also covers most of the IANA range other systems use)."""
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    return range(low, high + 1)


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port_block(count: int = 1, *, offsets: Sequence[int] = (0,)) -> int:
    """A port p such that p..p+count-1, each also moved by every offset, are free now and lie
    below the ephemeral range.

    For servers whose ports follow from one another (a cluster node's bus port 10000 above its
    own, a run of consecutive nodes), where `free_port` would only vouch for the first: the
    others are checked, not handed out, and inside the ephemeral range any connection opened
    meanwhile could take one before the server binds it (a cluster node then exits with
    "Address already in use"). Below that range only an explicit bind can."""
    low = max(1025, 1025 - min(offsets))
    high = _ephemeral_ports().start - count - max(0, max(offsets))
    if high < low:
        raise ValueError(f"no {count} ports with offsets {list(offsets)} below the ephemeral range")
    for _ in range(1000):
        first = random.randint(low, high)  # noqa: S311 - spreads callers apart, no secret
        if all(_bindable(first + i + shift) for i in range(count) for shift in offsets):
            return first
    raise RuntimeError(f"found no {count} free ports with offsets {list(offsets)}")


def answers(url: str, path: str = "/readyz", timeout_s: float = 1.0) -> bool:
    """Whether `url + path` answers 200."""
    try:
        with urllib.request.urlopen(f"{url}{path}", timeout=timeout_s) as response:  # noqa: S310
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def wait_until_ready(
    url: str,
    process: subprocess.Popen[bytes],
    log: Path,
    timeout_s: float,
    path: str = "/readyz",
) -> None:
    """Return once `url + path` answers 200; raise NotReadyError if the process exits first
    or the time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise NotReadyError(
                f"server exited with {process.returncode}:\n{log.read_text(errors='replace')}"
            )
        if answers(url, path):
            return
        time.sleep(0.05)
    raise NotReadyError(f"server not ready within {timeout_s}s:\n{log.read_text(errors='replace')}")


def stop(process: subprocess.Popen[bytes], timeout_s: float = 30) -> int:
    """SIGTERM to the process group (the server and every child it started), SIGKILL after
    `timeout_s`; the exit code."""
    if process.poll() is None:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return process.returncode


@contextmanager
def running(
    command: Sequence[str],
    *,
    port: int,
    log: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout_s: float = 60,
    ready_path: str = "/readyz",
) -> Iterator[ServerProcess]:
    """`command` in a session of its own (so that stopping it reaches its children), its
    output in `log`, ready when http://127.0.0.1:`port` answers `ready_path`; stopped on exit."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        process = subprocess.Popen(
            list(command),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = ServerProcess(f"http://127.0.0.1:{port}", port, process, log)
    try:
        wait_until_ready(server.url, process, log, timeout_s, ready_path)
        yield server
    finally:
        stop(process)
