"""`python -m service <command>`: the one command-line entry of the service.

serve       the API under gunicorn, configured from the environment (`make run`)
worker      stream consumers in a process of their own (`make worker`)
train-iris  train the scikit-learn iris model into a file (`make model`)
acl         print the least-privilege Redis ACL line for KEY_PREFIX
cluster     a local Redis Cluster under DATA_DIR/cluster, in the foreground (`make cluster`)
sentinel    a local Sentinel group under DATA_DIR/sentinel, in the foreground (`make sentinel`)
"""

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

from service.jobs import standalone
from service.models.iris import train
from service.server.embedded_redis import socket_path
from service.server.redis_topology import LocalCluster, LocalSentinel
from service.settings import Settings
from service.storage.acl import acl_line

GUNICORN_CONFIG = "python:service.server.gunicorn_conf"
LOG_FORMAT = "%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"


def serve(extra: list[str]) -> int:
    """gunicorn in place of this process (same pid, so signals reach its master directly);
    options after `serve` are gunicorn's own, as GUNICORN_CMD_ARGS's are."""
    command = [sys.executable, "-m", "gunicorn", "-c", GUNICORN_CONFIG, *extra]
    os.execv(sys.executable, command)  # noqa: S606 - a fixed program, not a shell


def standalone_redis_url(settings: Settings) -> str:
    """REDIS_URL, or else the embedded Redis that `make run` started from the same DATA_DIR."""
    if settings.redis_url is not None:
        return settings.redis_url
    path = socket_path(settings.data_dir / "redis")
    if path.exists():
        return f"unix://{path}"
    raise SystemExit(
        "REDIS_URL is not set and no embedded Redis runs under DATA_DIR: start `make run` "
        "first, or set REDIS_URL"
    )


def worker() -> int:
    logging.basicConfig(format=LOG_FORMAT, level=logging.INFO)
    settings = Settings()
    settings = settings.model_copy(update={"redis_url": standalone_redis_url(settings)})
    standalone.run(settings)
    return 0


def train_iris(path: Path) -> int:
    train(path)
    print(f"trained iris classifier -> {path}")
    return 0


def acl(user: str) -> int:
    settings = Settings()  # on a Cluster (REDIS_URL=redis+cluster://...), its commands too
    print(acl_line(user, settings.key_prefix, cluster=settings.redis_mode == "cluster"))
    return 0


# Redis's own convention: a sentinel listens 20000 above the data port it would sit beside.
SENTINEL_PORT_OFFSET = 20_000


def _in_foreground(topology: LocalCluster | LocalSentinel) -> int:
    """Start `topology`, print its REDIS_URL, and stop it on Ctrl-C or SIGTERM."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with topology:
            print(f"REDIS_URL={topology.url}", flush=True)
            print(f"in another terminal: REDIS_URL={topology.url} make run", flush=True)
            while True:
                signal.pause()
    except KeyboardInterrupt:
        return 0


def cluster(first_port: int) -> int:
    settings = Settings()
    ports = list(range(first_port, first_port + 6))
    return _in_foreground(
        LocalCluster(settings.data_dir / "cluster", ports=ports, binary=settings.redis_server_bin)
    )


def sentinel(first_port: int) -> int:
    settings = Settings()
    data_port = first_port - SENTINEL_PORT_OFFSET
    return _in_foreground(
        LocalSentinel(
            settings.data_dir / "sentinel",
            ports=[data_port, data_port + 1],
            sentinel_ports=[first_port, first_port + 1, first_port + 2],
            binary=settings.redis_server_bin,
        )
    )


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="python -m service",
        description="The prediction service. Configuration comes from the environment "
        "(docs/configuration.md).",
    )
    commands = root.add_subparsers(dest="command", required=True, metavar="command")
    commands.add_parser(
        "serve",
        help="serve the API under gunicorn (`make run`); further options are gunicorn's",
        add_help=False,
    )
    commands.add_parser("worker", help="run stream consumers on REDIS_URL (`make worker`)")
    iris = commands.add_parser("train-iris", help="train the iris model (`make model`)")
    iris.add_argument("path", nargs="?", type=Path, help="where to save it (default: MODEL_PATH)")
    acl_command = commands.add_parser("acl", help="print the Redis ACL line for KEY_PREFIX")
    acl_command.add_argument("user", nargs="?", default="prediction-service")
    cluster_command = commands.add_parser(
        "cluster",
        help="3 primaries and 3 replicas on ports CLUSTER_PORT..+5 (7000-7005), their data "
        "kept in DATA_DIR/cluster across restarts (`make cluster`)",
    )
    cluster_command.add_argument(
        "--port", type=int, default=os.environ.get("CLUSTER_PORT", "7000"), help="first port"
    )
    sentinel_command = commands.add_parser(
        "sentinel",
        help="3 sentinels on ports SENTINEL_PORT..+2 (26390-26392) watching a primary and a "
        "replica 20000 below (6390, 6391), started afresh in DATA_DIR/sentinel (`make sentinel`)",
    )
    sentinel_command.add_argument(
        "--port",
        type=int,
        default=os.environ.get("SENTINEL_PORT", "26390"),
        help="first sentinel's port",
    )
    return root


def main(argv: list[str] | None = None) -> int:
    args, extra = parser().parse_known_args(argv)
    if args.command == "serve":
        return serve(extra)
    if extra:
        parser().error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "worker":
        return worker()
    if args.command == "train-iris":
        return train_iris(args.path or Settings().model_path)
    if args.command == "cluster":
        return cluster(args.port)
    if args.command == "sentinel":
        return sentinel(args.port)
    return acl(args.user)
