"""The three builds measured side by side, and how each is started."""

import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bench.load import run_wrk
from bench.placement import Placement
from bench.scenarios import MOCK_BODY
from tests.processes import Served, serve

BuildName = Literal["tuned", "seed", "bound"]
BIN = Path(sys.executable).parent


@dataclass(frozen=True, slots=True)
class Build:
    name: BuildName
    title: str
    command: tuple[str, ...]  # PORT comes from the environment (see `serve`)


def _uvicorn(app: str) -> tuple[str, ...]:
    # uvicorn on the PORT that `serve` picks (uvicorn's CLI reads UVICORN_PORT), with
    # WEB_CONCURRENCY workers as the tuned build has (`started` makes it 1 unless told).
    return (
        str(BIN / "python"), "-c",
        "import os, uvicorn; uvicorn.run("
        f"'{app}', host='127.0.0.1', port=int(os.environ['PORT']), "
        "workers=int(os.environ.get('WEB_CONCURRENCY', '1')), "
        "loop='uvloop', http='httptools', log_level='warning', access_log=False)",
    )  # fmt: skip


BUILDS: dict[BuildName, Build] = {
    "tuned": Build(
        "tuned",
        "this service under gunicorn (gunicorn.conf.py, as `make run`)",
        (str(BIN / "gunicorn"), "-c", "gunicorn.conf.py"),
    ),
    "seed": Build(
        "seed",
        "FastAPI, sync redis-py in def routes, BackgroundTasks, 1 uvicorn worker unless said",
        _uvicorn("bench.apps.seed:app"),
    ),
    "bound": Build(
        "bound",
        "raw ASGI on uvicorn, orjson, redis.asyncio + hiredis",
        _uvicorn("bench.apps.bound:app"),
    ),
}
ORDER: tuple[BuildName, ...] = ("tuned", "seed", "bound")


@contextmanager
def started(
    build: Build, placement: Placement, env: Mapping[str, str], tmp: Path
) -> Iterator[Served]:
    """The build on a free port, pinned to the server cores, ready (its /readyz answers) and
    warmed up."""
    tmp.mkdir(parents=True, exist_ok=True)
    with serve(
        {"WEB_CONCURRENCY": "1", **env},
        tmp,
        command=placement.server_command(list(build.command)),
    ) as served:
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
