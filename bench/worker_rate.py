"""Jobs per second that one `python -m service worker` process drains from a full stream: the
figure behind the KEDA scaler's lagCount in deploy/kubernetes (docs/kubernetes.md).

`python -m bench.worker_rate [--jobs N] [--mock-latency-ms MS]`: a redis-server of its own on
127.0.0.1, N jobs submitted as the API submits them, then one worker with the environment's
settings (MODEL=mock, MOCK_LATENCY_MS) timed from its first finished job to its last, so that
its start-up is not counted.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from bench.instructions import KEY_PREFIX, enqueue
from service.server.embedded_redis import EmbeddedRedis
from service.server.process import free_port
from service.storage.keys import Keys

POLL_S = 0.005
TIMEOUT_S = 120.0


@dataclass(frozen=True)
class WorkerRate:
    jobs: int
    seconds: float

    @property
    def jobs_per_s(self) -> float:
        return self.jobs / self.seconds


def _completed(client: redis.Redis) -> int:
    return int(client.get(Keys(KEY_PREFIX).completed) or 0)


def _wait_for(client: redis.Redis, count: int, worker: subprocess.Popen[bytes]) -> int:
    deadline = time.monotonic() + TIMEOUT_S
    while (completed := _completed(client)) < count:
        if worker.poll() is not None:
            raise RuntimeError(f"the worker exited with {worker.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"the worker finished {completed} of {count} jobs")
        time.sleep(POLL_S)
    return completed


def measure(jobs: int, mock_latency_ms: float) -> WorkerRate:
    with tempfile.TemporaryDirectory(prefix="worker-rate-") as tmp:
        server = EmbeddedRedis(Path(tmp) / "redis", port=free_port(), appendonly=False)
        url = server.start()
        try:
            enqueue(url, jobs)
            env = {
                **os.environ,
                "REDIS_URL": url,
                "KEY_PREFIX": KEY_PREFIX,
                "MODEL": "mock",
                "MOCK_LATENCY_MS": str(mock_latency_ms),
                "DATA_DIR": str(Path(tmp) / "data"),
            }
            command = [sys.executable, "-m", "service", "worker"]
            with (
                redis.Redis.from_url(url) as client,
                subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL) as worker,
            ):
                try:
                    first = _wait_for(client, 1, worker)
                    start = time.monotonic()
                    last = _wait_for(client, jobs, worker)
                    return WorkerRate(last - first, time.monotonic() - start)
                finally:
                    worker.terminate()
        finally:
            server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.worker_rate")
    parser.add_argument("--jobs", type=int, default=30_000)
    parser.add_argument("--mock-latency-ms", type=float, default=20.0)
    args = parser.parse_args(argv)
    rate = measure(args.jobs, args.mock_latency_ms)
    print(f"jobs={rate.jobs} seconds={rate.seconds:.2f} jobs_per_s={rate.jobs_per_s:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
