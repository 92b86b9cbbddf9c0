"""`python -m loadtests.sidebyside` with tiny sizes: every target measured, nothing failed."""

from __future__ import annotations

import json
import os
import platform
import re
from pathlib import Path

import pytest

from loadtests.sidebyside import main

pytestmark = pytest.mark.integration

TINY = ["--concurrency", "1", "2", "--runs", "2"]
PROVIDERS = ("simulated", "openai")
SERVERS = {"alma": "alma serve", "dev": "langgraph dev"}
ROW = re.compile(
    r"^\s+(?P<provider>simulated|openai)\s+(?P<server>alma serve|langgraph dev)\s+"
    r"(?P<concurrency>\d+)\s+(?P<runs>\d+)\s+(?P<failures>\d+)\s"
)
# The engine is measured on LangGraph's experimental v3 events on purpose.
V3_NOTICE = "ignore:The v3 streaming protocol:langchain_core._api.LangChainBetaWarning"


@pytest.mark.filterwarnings(V3_NOTICE)
def test_every_target_is_measured_on_both_models_without_a_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report_path = tmp_path / "sidebyside.json"

    status = main([*TINY, "--json", str(report_path)])

    output = capsys.readouterr().out
    assert status == 0, output
    report = json.loads(report_path.read_text())
    assert report["machine"]["cpus"] == os.cpu_count()
    assert report["machine"]["python"] == platform.python_version()
    assert report["command"] == (
        f"python -m loadtests.sidebyside {' '.join(TINY)} --json {report_path}"
    )
    assert report["date"] and report["prompt"] == "Write a short poem about rivers"

    engine = {figures["provider"]: figures for figures in report["engine"]}
    assert set(engine) == set(PROVIDERS)
    for figures in engine.values():
        assert figures["runs"] == 2
        assert figures["astream_events_v3_cpu_ms"] > 0 and figures["astream_cpu_ms"] > 0

    levels = {(s["target"], s["provider"], s["concurrency"]): s for s in report["servers"]}
    assert set(levels) == {(t, p, c) for t in SERVERS for p in PROVIDERS for c in (1, 2)}
    for key, level in levels.items():
        assert level["runs"] == 2 and level["failures"] == 0 and level["errors"] == {}, key
        assert level["runs_per_second"] > 0, key
        assert 0 < level["ttft_p50_ms"] <= level["ttft_p99_ms"], key
        assert level["server_cpu_ms_per_run"] > 0, key
        if level["target"] == "alma":
            assert level["server_processes"] == 1, key  # one process unless told otherwise
        # Both servers keep their checkpoints in the one Redis; Redis itself counts them.
        assert level["redis_commands_per_run"] > 0 and level["redis_bytes_per_run"] > 0, key
        by_name = level["redis_commands_by_name"]
        assert sum(by_name.values()) == pytest.approx(level["redis_commands_per_run"], abs=0.1)
        assert list(by_name.values()) == sorted(by_name.values(), reverse=True), key
        simulator_cpu = level["simulator_cpu_ms_per_run"]
        assert (simulator_cpu is None) == (level["provider"] == "simulated"), key

    ratios = {(r["provider"], r["concurrency"]): r for r in report["ratios"]}
    assert set(ratios) == {(p, c) for p in PROVIDERS for c in (1, 2)}
    for where, ratio in ratios.items():
        for name in ("alma_cpu_over_engine_v3", "alma_over_dev_runs_per_second",
                     "alma_over_dev_ttft_p50"):  # fmt: skip
            assert ratio[name] > 0, (where, name)
    single = report["alma_single_stream_ttft_p50_ms"]
    for provider in PROVIDERS:
        assert single[provider] == levels["alma", provider, 1]["ttft_p50_ms"]

    # Opening an event stream, measured once per server: ALMA's cost it in Redis (a
    # connection slot, the thread's owner and lease, the end of its log).
    opened = report["stream_connections"]
    assert set(opened) == set(SERVERS)
    for target, figures in opened.items():
        assert figures["connections"] == 2 and figures["p50_ms"] > 0, target
    assert opened["alma"]["redis_commands"] > 0
    assert "opening one event stream" in output

    rows = [match.groupdict() for match in map(ROW.match, output.splitlines()) if match]
    printed = {(r["server"], r["provider"], int(r["concurrency"])) for r in rows}
    assert printed == {(SERVERS[t], p, c) for t, p, c in levels}
    assert all(r["runs"] == "2" and r["failures"] == "0" for r in rows)
    assert "failures: none" in output
    assert "Redis commands per run, by command" in output
    assert "ALMA single-stream TTFT p50 (simulated" in output


def test_a_server_that_cannot_start_fails_the_command_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no redis-server to start

    status = main([*TINY, "--targets", "alma"])

    assert status == 1
    assert "redis-server is not on PATH" in capsys.readouterr().err


def test_alma_can_be_measured_with_several_worker_processes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report_path = tmp_path / "sidebyside.json"
    arguments = ["--concurrency", "4", "--runs", "8", "--provider", "simulated"]

    status = main(
        [*arguments, "--targets", "alma", "--alma-workers", "2", "--json", str(report_path)]
    )

    output = capsys.readouterr().out
    assert status == 0, output
    report = json.loads(report_path.read_text())
    assert report["alma_workers"] == 2
    [level] = report["servers"]
    # Eight fresh threads, each stream's commands and events going to whichever of the
    # two processes accepted its connection: every run still ends with its answer.
    assert level["runs"] == 8 and level["failures"] == 0 and level["errors"] == {}
    # uvicorn's supervisor and the two workers (and multiprocessing's resource tracker);
    # one process alone with the default of one.
    assert level["server_processes"] >= 3
    assert level["server_cpu_ms_per_run"] > 0
    assert "alma serve runs 2 worker processes" in output
