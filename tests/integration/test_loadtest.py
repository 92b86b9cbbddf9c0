"""`alma loadtest smoke`: a few seconds of real load on loopback, and its report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.utils.processes import ROOT

pytestmark = pytest.mark.integration


def counter(path: Path, name: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(path.read_text()):
        total += sum(s.value for s in family.samples if s.name == name)
    return total


def test_smoke_load_against_alma_and_langgraph_dev_fails_on_nothing(tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = subprocess.run(
        [sys.executable, "-m", "server.cli", "loadtest", "smoke", "--target", "both",
         "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=200,
    )  # fmt: skip
    # The command fails on any failed request, so its status is the verdict.
    assert result.returncode == 0, result.stdout + result.stderr

    summary = json.loads((out / "summary.json").read_text())
    by_target = {s["target"]: s for s in summary["summaries"]}
    assert set(by_target) == {"alma", "langgraph-dev"}
    for target, figures in by_target.items():
        assert figures["failures"] == 0, (target, figures["errors"])
        assert figures["runs"] >= 1, target
        assert figures["ttft_p50_ms"] > 0 and figures["peak_rss_mib"] > 50
        names = {(r["type"], r["name"]) for r in figures["requests"]}
        assert {("WS", "connect"), ("WS", "time to first token"), ("WS", "full run"),
                ("SSE", "full run")} <= names, target  # fmt: skip
    # A comparison runs the same users on both: no cancels or resumes (langgraph dev
    # has no run.cancel); ALMA alone runs those, in its own smoke runs.
    assert "| alma |" in result.stdout and "| langgraph-dev |" in result.stdout

    alma = out / "alma"
    for name in ("locust_stats.csv", "locust.html", "resources.csv", "server.log"):
        assert (alma / name).stat().st_size > 0, name
    started = counter(alma / "metrics-after.txt", "alma_runs_started_total") - counter(
        alma / "metrics-before.txt", "alma_runs_started_total"
    )
    assert started >= by_target["alma"]["runs"]
    assert (out / "summary.md").read_text().startswith("# Load run: smoke")


def test_smoke_load_with_cancels_and_resumes_fails_on_nothing(tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = subprocess.run(
        [sys.executable, "-m", "server.cli", "loadtest", "smoke", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    [alma] = json.loads((out / "summary.json").read_text())["summaries"]
    names = {r["name"]: r for r in alma["requests"] if r["type"] == "WS"}
    # Each smoke user goes through every task in turn, so each kind shows up.
    for kind in ("connect", "time to first token", "full run", "cancel", "resume"):
        assert names[kind]["count"] >= 1 and names[kind]["failures"] == 0, kind
