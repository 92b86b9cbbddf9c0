"""`python -m loadtests.latency`, briefly: it starts its server and says what ALMA adds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtests.latency import main

pytestmark = pytest.mark.integration


def test_the_latency_benchmark_sets_the_service_against_the_engine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "latency.json"
    brief = ["--concurrency", "1", "2", "--streams", "4", "--engine-runs", "5"]
    assert main([*brief, "--json", str(report)]) == 0

    figures = json.loads(report.read_text())
    engine = figures["engine"]
    assert engine["runs"] == 5 and 0 < engine["p50_ms"] <= engine["p99_ms"]
    assert [f["concurrency"] for f in figures["figures"]] == [1, 2]
    for found in figures["figures"]:
        assert found["streams"] == 4 and found["failed"] == 0
        assert found["server_cpu_ms_per_stream"] > 0
        assert found["beyond_engine_p50_ms"] == pytest.approx(found["p50_ms"] - engine["p50_ms"])
    printed = capsys.readouterr().out
    assert "engine in process" in printed and "ALMA p50 ms" in printed
