"""The served API for the tests: `python -m service serve` (what `make run` runs) on a free port,
in a process group of its own, ready once its /readyz answers."""

import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from service.server.process import ServerProcess, free_port, running
from tests.support.paths import ROOT

# What `make run` starts (the Makefile's `run` target).
SERVE = (sys.executable, "-m", "service", "serve")


@contextmanager
def serve(
    env: Mapping[str, str],
    tmp: Path,
    *,
    command: Sequence[str] = SERVE,
    unset: tuple[str, ...] = (),
    timeout_s: float = 60,
) -> Iterator[ServerProcess]:
    """The service on a free port with one worker, its data and log under `tmp`; `env`
    overrides, `unset` removes variables of this process's environment."""
    port = free_port()
    full_env = {
        **{k: v for k, v in os.environ.items() if k not in unset},
        "PORT": str(port),
        "WEB_CONCURRENCY": "1",
        "DATA_DIR": str(tmp / "data"),
        **env,
    }
    log = tmp / f"server-{port}.log"
    with running(command, port=port, log=log, env=full_env, cwd=ROOT, timeout_s=timeout_s) as s:
        yield s


def iris_env(redis_url: str, artifact: Path) -> dict[str, str]:
    """A service on the real model. Its own key prefix: two services with different models on
    one Redis would otherwise share a job stream, and each would run the other's jobs."""
    return {
        "REDIS_URL": redis_url,
        "MODEL": "iris",
        "MODEL_PATH": str(artifact),
        "KEY_PREFIX": "iris:",
    }
