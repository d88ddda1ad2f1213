"""The Prometheus configuration, alert rules and Grafana provisioning, checked by promtool and
against each other (Grafana does not run here; test_dashboards_live runs every panel's query)."""

import subprocess
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from tests.support.dashboards import DASHBOARDS, dashboards, panels
from tests.support.paths import ROOT
from tests.support.tools import require

pytestmark = pytest.mark.prometheus

PROMETHEUS_DIR = ROOT / "dashboards" / "prometheus"
PROVISIONING = ROOT / "dashboards" / "grafana" / "provisioning"


def promtool(*args: str) -> None:
    result = subprocess.run(
        [require("promtool", "prometheus"), *args],
        cwd=PROMETHEUS_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_config_is_valid() -> None:
    promtool("check", "config", "prometheus.yml")


def test_alert_rules_are_valid() -> None:
    promtool("check", "rules", "alerts.yml")


def test_alerts_fire_when_they_should_and_only_then() -> None:
    promtool("test", "rules", "alerts.test.yml")


def test_the_alerts_the_issue_asks_for_exist() -> None:
    [group] = YAML(typ="safe").load(PROMETHEUS_DIR / "alerts.yml")["groups"]
    exprs = {rule["alert"]: rule["expr"] for rule in group["rules"]}
    assert 'status=~"5.."' in exprs["HighErrorRatio"]
    assert "histogram_quantile(0.99" in exprs["HighP99Latency"]
    assert "prediction_queue_backlog_jobs" in exprs["QueueBacklogGrowing"]
    assert "prediction_queue_oldest_job_age_seconds" in exprs["OldestJobTooOld"]
    assert "prediction_jobs_dead_lettered_total" in exprs["JobsDeadLettered"]
    assert 'outcome="dead"' in exprs["WebhooksDeadLettered"]


def test_every_panel_uses_the_provisioned_datasource() -> None:
    [source] = YAML(typ="safe").load(PROVISIONING / "datasources" / "prometheus.yml")["datasources"]
    assert source["url"] == "http://prometheus:9090"
    for panel in panels():
        assert panel.raw["datasource"]["uid"] == source["uid"], panel.title
        assert panel.raw["targets"], panel.title
        assert all(t["datasource"]["uid"] == source["uid"] for t in panel.raw["targets"])


def test_dashboards_have_unique_ids_and_titles() -> None:
    boards = dashboards()
    assert len(boards) >= 2
    assert len({board["uid"] for board in boards.values()}) == len(boards)
    for board in boards.values():
        titles = [panel["title"] for panel in board["panels"]]
        assert len(set(titles)) == len(titles), board["uid"]


def test_compose_mounts_the_provisioning_and_the_dashboards() -> None:
    services = YAML(typ="safe").load(ROOT / "docker-compose.yml")["services"]
    mounts = {
        target: ROOT / source
        for name in ("prometheus", "grafana")
        for source, target, *_ in (v.split(":") for v in services[name]["volumes"])
        if source.startswith("./")
    }
    assert mounts["/etc/prometheus"] == ROOT / "./dashboards/prometheus"
    assert mounts["/etc/grafana/provisioning"] == ROOT / "./dashboards/grafana/provisioning"
    assert mounts["/var/lib/grafana/dashboards"] == ROOT / "./dashboards/grafana/dashboards"
    [provider] = YAML(typ="safe").load(PROVISIONING / "dashboards" / "dashboards.yml")["providers"]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    home = services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (DASHBOARDS / Path(home).name).is_file()


@pytest.mark.parametrize("title", sorted({panel.title for panel in panels()}))
def test_the_docs_say_what_each_panel_answers(title: str) -> None:
    text = (ROOT / "docs" / "dashboards.md").read_text()
    line = next((line for line in text.splitlines() if line.startswith(f"- **{title}**: ")), None)
    assert line is not None, f"docs/dashboards.md does not describe the panel {title!r}"
    assert len(line) > len(f"- **{title}**: ") + 10  # a sentence, not just the name
