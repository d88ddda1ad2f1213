"""`python -m service`: the one command-line entry, run as a user runs it."""

import os
import subprocess
import sys
from pathlib import Path

import joblib

from tests.support.paths import ROOT


def service(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "KEY_PREFIX")}
    return subprocess.run(
        [sys.executable, "-m", "service", *args],
        cwd=ROOT,
        env={**full_env, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_help_lists_every_command() -> None:
    done = service("--help")
    assert done.returncode == 0
    for command in ("serve", "worker", "train-iris", "acl"):
        assert command in done.stdout


def test_an_unknown_command_is_a_usage_error() -> None:
    done = service("fly")
    assert done.returncode == 2
    assert "invalid choice: 'fly'" in done.stderr


def test_acl_prints_a_rule_for_the_configured_prefix() -> None:
    done = service("acl", "svc", KEY_PREFIX="tenant-a:")
    assert done.returncode == 0
    words = done.stdout.split()
    assert words[:2] == ["user", "svc"]
    assert "~tenant-a:*" in words
    assert "&tenant-a:*" in words
    assert "-@all" in words


def test_train_iris_writes_a_model_that_loads(tmp_path: Path) -> None:
    target = tmp_path / "iris.joblib"
    done = service("train-iris", str(target))
    assert done.returncode == 0, done.stderr
    assert set(joblib.load(target)) == {"classifier", "classes"}


def test_worker_without_redis_says_what_to_set(tmp_path: Path) -> None:
    done = service("worker", DATA_DIR=str(tmp_path))
    assert done.returncode == 1
    assert "REDIS_URL is not set and no embedded Redis runs under DATA_DIR" in done.stderr


def test_serve_passes_unknown_options_to_gunicorn() -> None:
    done = service("serve", "--check-config")
    assert done.returncode == 0, done.stdout + done.stderr
