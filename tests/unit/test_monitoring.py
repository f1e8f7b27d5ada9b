"""The chart's alert rules and dashboard: promtool's checks and tests, and what the chart renders.

promtool is tools/observe/build.sh's (Prometheus from the Go module proxy);
a missing one fails, since ``make deps`` builds it. That every metric the
rules and the dashboard name is really exported is checked against running
processes in tests/integration/test_metric_names.py.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.test_chart_render import by_kind, helm, render  # noqa: F401 (fixture)

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "charts" / "fleetcast" / "files" / "alerts.yaml"
DASHBOARD = ROOT / "charts" / "fleetcast" / "files" / "dashboards" / "fleetcast.json"
RULE_TESTS = ROOT / "tests" / "monitoring" / "alerts_test.yaml"
MONITORING_VALUES = ROOT / "charts" / "fleetcast" / "ci" / "07-monitoring-values.yaml"


@pytest.fixture(scope="module")
def promtool() -> Path:
    found = subprocess.run(
        [ROOT / "tools/observe/build.sh", "--check"], capture_output=True, text=True, check=False
    )
    if found.returncode:
        pytest.fail(f"promtool is not built: {found.stderr.strip()}", pytrace=False)
    return Path(found.stdout.strip()) / "promtool"


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=False, timeout=120)


def test_the_rules_pass_promtool_check(promtool: Path) -> None:
    done = run(promtool, "check", "rules", ALERTS)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 8 rules found" in done.stdout


def test_the_rules_pass_their_unit_tests(promtool: Path) -> None:
    done = run(promtool, "test", "rules", RULE_TESTS)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_has_a_unit_test_that_fires_it() -> None:
    alerts = {r["alert"] for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]}
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    fired = {
        case["alertname"]
        for test in tests
        for case in test["alert_rule_test"]
        if case.get("exp_alerts")
    }
    assert fired == alerts


def dashboard_queries(dashboard: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def test_the_chart_renders_the_rules_and_the_dashboard_as_written(helm: Path) -> None:  # noqa: F811
    kinds = by_kind(render(helm, "-f", MONITORING_VALUES))
    (rule,) = kinds["PrometheusRule"]
    assert rule["metadata"]["labels"]["release"] == "prometheus"
    assert rule["spec"]["groups"] == yaml.safe_load(ALERTS.read_text())["groups"]
    (dashboards,) = [
        cm for cm in kinds["ConfigMap"] if cm["metadata"]["name"].endswith("-dashboards")
    ]
    assert dashboards["metadata"]["labels"]["grafana_dashboard"] == "1"
    rendered = json.loads(dashboards["data"]["fleetcast.json"])
    assert rendered == json.loads(DASHBOARD.read_text())
    assert len(dashboard_queries(rendered)) >= 10


def test_off_by_default(helm: Path) -> None:  # noqa: F811
    kinds = by_kind(render(helm))
    assert "PrometheusRule" not in kinds
    assert not [cm for cm in kinds.get("ConfigMap", []) if "dashboards" in cm["metadata"]["name"]]
