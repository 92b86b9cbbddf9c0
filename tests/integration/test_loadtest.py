"""`alma loadtest smoke`: a few seconds of real load on loopback, and its report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from loadtests.run import runs_started
from tests.utils.processes import ROOT
from tests.utils.system_tools import require_tool

pytestmark = pytest.mark.integration


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
    assert runs_started(alma) >= by_target["alma"]["runs"]
    assert (out / "summary.md").read_text().startswith("# Load run: smoke")


def test_each_smoke_user_goes_through_every_task_in_turn() -> None:
    # Locust patches the process it is imported in (gevent): looked at from another one.
    shown = subprocess.run(
        [sys.executable, "-c", "from loadtests.locustfile import ConversationSmokeUser, "
         "SmokeUser\nfor user in (SmokeUser, ConversationSmokeUser):\n"
         "    print([task.__name__ for task in user.tasks])"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert shown.stdout.split("\n")[:2] == ["['_every_request']", "['_every_conversation']"]


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
        assert kind in names, (kind, alma["errors"])
        assert names[kind]["count"] >= 1 and names[kind]["failures"] == 0, (kind, alma["errors"])


def test_smoke_load_through_nginx_reaches_every_process_and_reports_each_count(
    tmp_path: Path,
) -> None:
    require_tool("nginx")
    out = tmp_path / "report"
    result = subprocess.run(
        [sys.executable, "-m", "server.cli", "loadtest", "smoke", "--processes", "1,2",
         "--duration", "5", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr

    summaries = json.loads((out / "summary.json").read_text())["summaries"]
    assert [s["processes"] for s in summaries] == [1, 2]
    for figures in summaries:
        assert figures["failures"] == 0, figures["errors"]
        assert figures["runs"] >= 1 and figures["runs_per_second"] > 0
        assert {"nginx", "model simulator", "redis", "Locust", "machine"} <= set(
            figures["cpu_cores"]
        )
    # No stickiness: round robin hands every process its share of new runs.
    one, two = (s["runs_by_process"] for s in summaries)
    assert len(one) == 1 and len(two) == 2 and min(two) >= 1, two
    assert [runs_started(out / "alma-2" / f"process-{n}") for n in (1, 2)] == two
    assert "| alma ×1 via nginx | 4 |" in result.stdout
    assert "| alma ×2 via nginx | 4 |" in result.stdout


def test_idle_sockets_answer_the_servers_pings_and_stay_open(tmp_path: Path) -> None:
    # The server pings every second and closes a socket that leaves a ping unanswered
    # for a second: an idle user that never read would be gone within seconds. Open
    # tabs read, so all of them are still open, by the server's own gauge, at the end.
    out = tmp_path / "report"
    env = {**os.environ, "ALMA_WS_PING_INTERVAL": "1", "ALMA_WS_PING_TIMEOUT": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "server.cli", "loadtest", "connections", "--users", "1",
         "--idle", "10", "--duration", "10", "--profile", "fast", "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    [alma] = json.loads((out / "summary.json").read_text())["summaries"]
    assert alma["failures"] == 0, alma["errors"]
    assert alma["websockets_held"] is not None and alma["websockets_held"] >= 10, alma
    # Read with the ten idle sockets open alone, before the active user came.
    assert alma["idle_alone_websockets"] == 10 and alma["idle_kib_each"] is not None, alma
    assert "| memory per idle connection |" in (out / "summary.md").read_text()
