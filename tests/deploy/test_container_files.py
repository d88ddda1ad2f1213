"""docker-compose.yml and the Dockerfile, checked by real tools (Docker cannot run here)."""

import subprocess
import sys
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from service.settings import Settings
from tests.support.paths import ROOT

BIN = Path(sys.executable).parent


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=False)


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = YAML(typ="safe").load(ROOT / "docker-compose.yml")
    return loaded


def test_dockerfile_passes_hadolint() -> None:
    result = run(str(BIN / "hadolint"), "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_is_multi_stage_and_non_root() -> None:
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    assert sum(line.startswith("FROM ") for line in lines) >= 2
    assert [line for line in lines if line.startswith("USER ")][-1] != "USER root"
    assert any(line.startswith("HEALTHCHECK ") for line in lines)
    assert any("--require-hashes" in line for line in lines)


def test_compose_file_matches_the_compose_spec() -> None:
    result = run(
        str(BIN / "check-jsonschema"),
        "--builtin-schema",
        "vendor.compose-spec",
        "docker-compose.yml",
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_topology() -> None:
    services = compose()["services"]
    redis, api = services["redis"], services["api"]
    assert "--appendonly" in redis["command"]
    assert any(volume.endswith(":/data") for volume in redis["volumes"])
    assert redis["healthcheck"]["test"][-1] == "ping"
    assert api["depends_on"]["redis"]["condition"] == "service_healthy"
    assert api["environment"]["REDIS_URL"] == "redis://redis:6379/0"
    assert api["ports"] == ["${PORT:-8080}:8080"]
    assert api["build"] == "."
    worker = services["worker"]
    assert worker["command"] == ["python", "-m", "service", "worker"]
    assert worker["image"] == api["image"]
    assert worker["environment"]["REDIS_URL"] == api["environment"]["REDIS_URL"]


def test_compose_gives_the_api_and_every_worker_the_same_webhook_secret() -> None:
    services = compose()["services"]
    signing = ("api", "worker", "api-cluster", "worker-cluster")
    secrets = {services[name]["environment"]["WEBHOOK_SECRET"] for name in signing}
    assert secrets == {"${WEBHOOK_SECRET:-}"}
    assert Settings(webhook_secret="").webhook_secret is None  # unset in the shell: no webhooks


def test_compose_cluster_profile_runs_the_api_on_six_cluster_nodes() -> None:
    services = compose()["services"]
    in_profile = {name for name, s in services.items() if "cluster" in s.get("profiles", [])}
    nodes = sorted(name for name in in_profile if name.startswith("redis-node-"))
    assert nodes == [f"redis-node-{i}" for i in range(6)]
    for name in nodes:
        command = services[name]["command"]
        assert command[command.index("--cluster-enabled") + 1] == "yes"
        assert "--appendonly" in command
    create = services["redis-cluster-init"]["command"][0]
    addresses = [
        services[name]["networks"]["redis-cluster"]["ipv4_address"] + ":6379" for name in nodes
    ]
    assert f"--cluster create {' '.join(addresses)} --cluster-replicas 1" in create
    for name in ("api-cluster", "worker-cluster"):
        service = services[name]
        assert name in in_profile
        assert service["image"] == services["api"]["image"]
        assert service["environment"]["REDIS_URL"].startswith("redis+cluster://redis-node-0:6379,")
        init = service["depends_on"]["redis-cluster-init"]
        assert init["condition"] == "service_completed_successfully"
    assert services["worker-cluster"]["command"] == ["python", "-m", "service", "worker"]
    assert not any("profiles" in services[name] for name in ("redis", "api", "worker"))


def test_compose_runs_locust_distributed() -> None:
    services = compose()["services"]
    master, worker = services["locust-master"], services["locust-worker"]
    assert "--master" in master["command"]
    assert master["ports"] == ["8089:8089"]
    assert master["depends_on"]["api"]["condition"] == "service_healthy"
    assert worker["command"][-3:] == ["--worker", "--master-host", "locust-master"]
    assert master["build"]["target"] == worker["build"]["target"] == "loadtest"
    stages = [
        line.split()[-1]
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.startswith("FROM ")
    ]
    assert "loadtest" in stages
    assert stages[-1] == "runtime"  # `build: .` (the api) still builds the service
