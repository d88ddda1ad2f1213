"""The helper that starts a server, waits until it is ready and stops it with its children."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from service.server.process import NotReadyError, answers, free_port, running
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
