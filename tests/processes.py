"""Real processes for the tests: the served API under gunicorn, and how to wait for it."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx2 as httpx

from service.embedded_redis import free_port

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


@dataclass
class Served:
    url: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def wait_until_healthy(
    url: str, process: subprocess.Popen[bytes], log: Path, timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"server not ready within {timeout_s}s:\n{log.read_text()}")


@contextmanager
def serve(
    env: Mapping[str, str],
    tmp: Path,
    *,
    command: list[str] | None = None,
    unset: tuple[str, ...] = (),
    timeout_s: float = 60,
) -> Iterator[Served]:
    """gunicorn with gunicorn.conf.py, as `make run` starts it, on a free port."""
    port = free_port()
    full_env = {
        **{k: v for k, v in os.environ.items() if k not in unset},
        "PORT": str(port),
        "WEB_CONCURRENCY": "1",
        "DATA_DIR": str(tmp / "data"),
        **env,
    }
    log = tmp / f"server-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command or [str(VENV_BIN / "gunicorn"), "-c", "gunicorn.conf.py"],
            cwd=ROOT,
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    served = Served(f"http://127.0.0.1:{port}", port, process, log)
    try:
        wait_until_healthy(served.url, process, log, timeout_s)
        yield served
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes], timeout_s: float = 30) -> int:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return process.returncode


def iris_env(redis_url: str, artifact: Path) -> dict[str, str]:
    """A service on the real model. Its own key prefix: two services with different models on
    one Redis would otherwise share a job stream, and each would run the other's jobs."""
    return {
        "REDIS_URL": redis_url,
        "MODEL": "iris",
        "MODEL_PATH": str(artifact),
        "KEY_PREFIX": "iris:",
    }
