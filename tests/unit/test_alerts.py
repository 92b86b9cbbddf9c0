"""Alert rules and the Grafana dashboard: valid, and only about metrics ALMA exports."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import promql_parser
import yaml
from prometheus_client import REGISTRY

import server.observability.metrics  # noqa: F401 - registers ALMA's metrics
from tests.utils.processes import ROOT
from tests.utils.system_tools import require_tool

ALERTS = ROOT / "loadtests" / "alerts.yml"
ALERT_TESTS = ROOT / "loadtests" / "alerts.test.yml"
DASHBOARD = ROOT / "loadtests" / "grafana" / "alma.json"
_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_count", "_sum"),
    "gauge": ("",),
}


def families() -> dict[str, set[str]]:
    """The series names each of ALMA's metric families can produce."""
    return {
        family.name: {family.name + suffix for suffix in _SUFFIXES[family.type]}
        for family in REGISTRY.collect()
        if family.name.startswith("alma_")
    }


def exported() -> set[str]:
    """Every series name ALMA's metrics can produce."""
    return set().union(*families().values())


def metrics_in(expr: str) -> set[str]:
    # Grafana's variables are not PromQL; any duration stands in for them.
    parsed = promql_parser.parse(expr.replace("$__rate_interval", "5m"))
    found: set[str] = set()

    def visit(node: Any) -> bool:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            found.add(node.name)
        return True

    promql_parser.walk(parsed, visit)
    return found


def rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"]
            for rule in group["rules"]]  # fmt: skip


def test_every_alert_is_documented_and_names_exported_metrics() -> None:
    names = exported()
    wanted = {"AlmaRunErrorRateHigh", "AlmaTimeToFirstTokenSlow", "AlmaEventLoopLagging",
              "AlmaRedisDown", "AlmaRateLimitRefusalsSpiking"}  # fmt: skip
    assert wanted <= {rule["alert"] for rule in rules()}
    for rule in rules():
        assert rule["annotations"]["summary"] and len(rule["annotations"]["runbook"]) > 80
        used = metrics_in(rule["expr"])
        assert used and used <= names, (rule["alert"], used - names)


def test_promtool_accepts_the_rules_and_their_unit_tests(tmp_path: Path) -> None:
    promtool = require_tool("promtool")
    checked = subprocess.run(
        [promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 6 rules found" in checked.stdout

    # promtool compares annotations too; they come from the rules, so the tests say only
    # which alerts fire, with which labels, when.
    annotations = {rule["alert"]: rule["annotations"] for rule in rules()}
    suite = yaml.safe_load(ALERT_TESTS.read_text())
    suite["rule_files"] = [str(ALERTS)]
    fired = 0
    for case in suite["tests"]:
        for check in case["alert_rule_test"]:
            for alert in check["exp_alerts"]:
                alert["exp_annotations"] = annotations[check["alertname"]]
                fired += 1
    assert fired >= 6 and {c["alertname"] for t in suite["tests"] for c in t["alert_rule_test"]} \
        == set(annotations)  # fmt: skip
    (tmp_path / "alerts.test.yml").write_text(yaml.safe_dump(suite))
    tested = subprocess.run(
        [promtool, "test", "rules", str(tmp_path / "alerts.test.yml")],
        capture_output=True,
        text=True,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_dashboard_queries_name_exported_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = [panel for panel in dashboard["panels"] if panel["type"] != "row"]
    assert len(panels) >= 20
    names = exported()
    covered: set[str] = set()
    for panel in panels:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            used = metrics_in(target["expr"])
            assert used and used <= names, (panel["title"], used - names)
            covered |= used
    # Every metric family appears on some panel.
    missing = {name for name, series in families().items() if not series & covered}
    assert not missing, missing
