"""Open loop against a server that stalls: Locust's own percentiles hide the stall (coordinated
omission); the ones measured from each arrival's intended start do not.

The stall is a real one: the whole server (gunicorn and its worker) is stopped with SIGSTOP for
two seconds, as a long GC pause or a hung host would stop it, then continued. MOCK_LATENCY_MS
gives each request a model's latency; it is the same for every call, so it cannot make a stall.
"""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from service.server.embedded_redis import EmbeddedRedis
from tests.support.locust_runs import LoadtestRun, loadtest_env, make_command
from tests.support.served import serve

pytestmark = [pytest.mark.served, pytest.mark.locust]

RUN_BEFORE_STALL_S = 2.0
STALL_S = 2.0


def test_open_loop_reports_the_stall_that_locust_percentiles_hide(
    tmp_path: Path, redis_server: EmbeddedRedis
) -> None:
    env = {"REDIS_URL": redis_server.url, "MOCK_LATENCY_MS": "5"}
    with serve(env, tmp_path) as served:
        run_env = loadtest_env(
            served.url,
            tmp_path,
            {
                "SCENARIO": "open-loop",
                "LOCUST_USERS": "1",
                "LOCUST_SPAWN_RATE": "1",
                "LOCUST_RUN_TIME": "8s",
                "LOADTEST_ARRIVAL_RATE": "100",
                "LOADTEST_OPEN_LOOP_CONNECTIONS": "4",
            },
        )
        with subprocess.Popen(
            make_command("loadtest"),
            env=run_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        ) as locust:
            # Locust creates its CSV files as the run starts; the stall comes in the run's middle.
            deadline = time.monotonic() + 60
            while not (tmp_path / "open-loop_stats_history.csv").exists():
                assert locust.poll() is None, "Locust exited before the run started"
                assert time.monotonic() < deadline, "the run did not start"
                time.sleep(0.1)
            time.sleep(RUN_BEFORE_STALL_S)
            os.killpg(served.process.pid, signal.SIGSTOP)
            try:
                time.sleep(STALL_S)
            finally:
                os.killpg(served.process.pid, signal.SIGCONT)
            output, _ = locust.communicate(timeout=120)
    run = LoadtestRun(locust.returncode, output, tmp_path, "open-loop")
    assert run.returncode == 0, run.output
    table = run.summary()["open_loop_ms"]
    locust_ms, corrected_ms = table["locust_from_send"], table["corrected_from_intended_start"]
    # About a quarter of the arrivals fell due during the stall and waited for it; from sending,
    # only the four requests on the four connections saw it.
    assert corrected_ms["p90"] >= 0.25 * STALL_S * 1000, table
    assert locust_ms["p90"] * 5 <= corrected_ms["p90"], table
    assert "corrected_from_intended_start" in run.output
