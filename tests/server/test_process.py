"""The helper that starts a server, waits until it is ready and stops it with its children."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from service.server.process import (
    NotReadyError,
    _ephemeral_ports,
    answers,
    free_port,
    free_port_block,
    running,
)
from tests.support.paths import ROOT


def test_it_needs_nothing_but_the_standard_library() -> None:
    # -S: no site-packages at all; -I: no user site, no environment, no current directory.
    code = f"import sys; sys.path.insert(0, {str(ROOT)!r}); import service.server.process"
    done = subprocess.run(
        [sys.executable, "-S", "-I", "-c", code], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


def test_a_server_is_ready_when_it_answers_and_stopped_with_its_children(tmp_path: Path) -> None:
    port = free_port()
    # A shell whose child is the server: stopping the shell's group must stop the server too.
    command = ["sh", "-c", f"{sys.executable} -m http.server {port} --bind 127.0.0.1; sleep 60"]
    with running(command, port=port, log=tmp_path / "server.log", ready_path="/") as server:
        assert answers(server.url, "/")
        assert os.getpgid(server.process.pid) == server.process.pid  # a group of its own
    assert server.process.returncode is not None
    assert not answers(server.url, "/")  # the shell's child, the server, is gone too


def test_a_server_that_exits_is_not_waited_for(tmp_path: Path) -> None:
    command = [sys.executable, "-c", "print('cannot start'); raise SystemExit(3)"]
    with (
        pytest.raises(NotReadyError, match="exited with 3:\ncannot start"),
        running(command, port=free_port(), log=tmp_path / "server.log"),
    ):
        pass


@pytest.mark.parametrize("offset", [10_000, -20_000])
def test_a_block_of_ports_and_its_shifted_twins_are_free_and_below_the_ephemeral_range(
    offset: int,
) -> None:
    first = free_port_block(6, offsets=(0, offset))
    ports = [first + i + shift for i in range(6) for shift in (0, offset)]
    assert all(1024 < port < _ephemeral_ports().start for port in ports)
    for port in ports:  # each can be bound: nothing holds it
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", port))


def test_a_block_that_cannot_fit_below_the_ephemeral_range_is_refused() -> None:
    with pytest.raises(ValueError, match="below the ephemeral range"):
        free_port_block(2, offsets=(0, _ephemeral_ports().start))
