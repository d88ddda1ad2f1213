"""How each of the three builds measured side by side is started."""

import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.lineup import BuildName
from bench.load import run_wrk
from bench.placement import Placement
from bench.scenarios import MOCK_BODY
from service.server.process import ServerProcess, free_port, running

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True)
class Build:
    name: BuildName
    command: tuple[str, ...]  # PORT comes from the environment (see `serve`)


def _uvicorn(app: str) -> tuple[str, ...]:
    # uvicorn on the PORT that `started` picks, with WEB_CONCURRENCY workers as the tuned build
    # has (`started` makes it 1 unless told).
    return (sys.executable, "-m", "bench.apps.serve", app)


BUILDS: dict[BuildName, Build] = {
    "tuned": Build(
        "tuned",
        (sys.executable, "-m", "service", "serve"),
    ),
    "seed": Build(
        "seed",
        _uvicorn("bench.apps.seed:app"),
    ),
    "bound": Build(
        "bound",
        _uvicorn("bench.apps.bound:app"),
    ),
}


@contextmanager
def started(
    build: Build, placement: Placement, env: Mapping[str, str], tmp: Path
) -> Iterator[ServerProcess]:
    """The build on a free port, pinned to the server cores, ready (its /readyz answers) and
    warmed up."""
    port = free_port()
    full_env = {
        **os.environ,
        "PORT": str(port),
        "WEB_CONCURRENCY": "1",
        "DATA_DIR": str(tmp / "data"),
        **env,
    }
    command = placement.server_command(list(build.command))
    log = tmp / f"server-{port}.log"
    with running(command, port=port, log=log, env=full_env, cwd=ROOT) as served:
        warm_up(served.url, placement)
        yield served


WARM_UP_CONNECTIONS = 256


def warm_up(url: str, placement: Placement) -> None:
    """A second of sync requests on WARM_UP_CONNECTIONS new connections, not measured.

    On this machine, the first burst of new connections to a freshly started server costs some
    of them over a second (TCP loss probes and retransmissions while they wait to be
    accepted); the next bursts do not. It was seen for the gunicorn-served build started from
    a Python parent, as here, and not for the same server started from a shell. A discarded
    burst keeps it out of every figure, for every build alike.
    """
    run_wrk(
        url,
        "warm-up",
        script="post.lua",
        connections=WARM_UP_CONNECTIONS,
        duration_s=1,
        placement=placement,
        env={"BENCH_BODY": MOCK_BODY},
        allow_errors=True,
    )
