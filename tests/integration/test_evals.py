"""`alma eval`: offline against the simulated model, or uploaded to (a stand-in for) LangSmith."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from server.version import VERSION
from tests.integration.conftest import OpenAIEndpoint
from tests.utils.langsmith_stand_in import langsmith_stand_in
from tests.utils.processes import ROOT
from tests.utils.redis_server import RedisServer

pytestmark = pytest.mark.integration

BASELINE = json.loads((ROOT / "evals" / "baseline.json").read_text())


def alma_eval(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("LANGSMITH_")}
    return subprocess.run(
        [sys.executable, "-m", "server.cli", "eval", *args],
        cwd=ROOT, env={**environment, **env}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_offline_evaluation_holds_the_baseline_and_makes_no_connection(
    redis: RedisServer, tmp_path: Path
) -> None:
    out = tmp_path / "results.json"
    with langsmith_stand_in() as langsmith:
        # An endpoint is configured but no key: nothing may reach it.
        result = alma_eval(
            "--out", str(out), ALMA_REDIS_URL=redis.url, ALMA_REDIS_REQUIRED="true",
            LANGSMITH_ENDPOINT=langsmith.url,
        )  # fmt: skip
        assert langsmith.recorded.connections == 0
    assert result.returncode == 0, result.stdout + result.stderr
    saved = json.loads(out.read_text())
    assert saved["simulated"] is True
    assert saved["scores"] == pytest.approx(BASELINE, abs=0.02)
    suites = {(s["suite"], s["router"]): s for s in saved["suites"]}
    assert set(suites) == {("routing", "heuristic"), ("routing", "hybrid"),
                           ("memory", "hybrid"), ("analytical", "hybrid"),
                           ("crossthread", "hybrid")}  # fmt: skip
    routing = suites[("routing", "heuristic")]
    assert sum(routing["confusion"].values()) == 170
    assert set(routing["accuracy_by_kind"]) == {
        "clear", "mixed", "ambiguous", "other-language", "injection", "conversational"}  # fmt: skip
    # The facts of earlier turns came back from Redis into the last prompt.
    assert suites[("memory", "hybrid")]["scores"]["context_recall"] == 1.0
    # …and the simulated model's last answers state them.
    assert suites[("memory", "hybrid")]["scores"]["answer_recall"] == 1.0
    # A fact told in one thread is used in another of its owner's, and never once
    # deleted or by another owner: the store lives in Redis too.
    crossthread = suites[("crossthread", "hybrid")]["scores"]
    assert crossthread["memory_recall"] == crossthread["forgotten_after_deletion"] == 1.0
    assert crossthread["private_to_owner"] == 1.0
    assert "| routing | heuristic | route_accuracy |" in result.stdout


def test_offline_evaluation_is_quiet_and_names_the_baseline_it_held(tmp_path: Path) -> None:
    result = alma_eval("--suite", "routing", "--router", "heuristic", "--out",
                       str(tmp_path / "r.json"), ALMA_REDIS_URL="")  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    # Nothing about experiments that exist nowhere, nor about not uploading them.
    assert "Starting evaluation" not in result.stdout + result.stderr
    assert "Warning" not in result.stderr and "upload_runs" not in result.stderr
    held = [key for key in BASELINE if key.startswith("routing/heuristic/")]
    baseline = ROOT / "evals" / "baseline.json"
    summary = f"eval: {len(held)} of {len(held)} metrics within 0.02 of the baseline {baseline}"
    assert summary in result.stderr.splitlines()


def test_a_drop_beyond_the_tolerance_fails(tmp_path: Path) -> None:
    baseline = tmp_path / "baseline.json"
    better = BASELINE["routing/heuristic/route_accuracy"] + 0.05
    baseline.write_text(json.dumps({"routing/heuristic/route_accuracy": better}))
    result = alma_eval("--suite", "routing", "--router", "heuristic", "--baseline",
                       str(baseline), "--out", str(tmp_path / "r.json"))  # fmt: skip
    assert result.returncode == 1
    assert "score dropped — routing/heuristic/route_accuracy" in result.stderr
    assert f"eval: 0 of 1 metrics within 0.02 of the baseline {baseline}" in result.stderr


def test_with_a_key_datasets_and_experiments_go_to_langsmith(tmp_path: Path) -> None:
    with langsmith_stand_in() as langsmith:
        result = alma_eval(
            "--suite", "routing", "analytical", "--router", "heuristic",
            "--out", str(tmp_path / "r.json"),
            LANGSMITH_API_KEY="lsv2-test", LANGSMITH_ENDPOINT=langsmith.url,
        )  # fmt: skip
        recorded = langsmith.recorded
    assert result.returncode == 0, result.stdout + result.stderr
    datasets = {d["name"]: d for d in recorded.datasets.values()}
    assert set(datasets) == {"alma-routing", "alma-analytical"}
    routing = datasets["alma-routing"]
    examples = [e for e in recorded.examples.values() if e["dataset_id"] == routing["id"]]
    assert len(examples) == 170
    assert {e["outputs"]["route"] for e in examples} == {"creative", "analytical"}
    experiments = {s["extra"]["metadata"]["suite"]: s for s in recorded.sessions.values()
                   if s.get("reference_dataset_id")}  # fmt: skip
    assert set(experiments) == {"routing", "analytical"}
    experiment = experiments["routing"]
    assert experiment["reference_dataset_id"] == routing["id"]
    assert experiment["name"].startswith("alma-routing-heuristic")
    metadata = experiment["extra"]["metadata"]
    assert (metadata["router"], metadata["alma_version"], metadata["dataset"]) == (
        "heuristic",
        VERSION,
        "alma-routing",
    )
    assert metadata["simulated"] is True
    # Every example's run is in the experiment, linked to its example, with its score.
    runs = [
        r for r in recorded.runs.values()
        if r.get("session_name") == experiment["name"] and not r.get("parent_run_id")
    ]  # fmt: skip
    assert {r.get("reference_example_id") for r in runs} == {e["id"] for e in examples}
    scored = [r for r in recorded.runs.values() if "feedback" in r.get("_operations", set())
              and r.get("key") == "route_accuracy"]  # fmt: skip
    assert {f["run_id"] for f in scored} == {r["id"] for r in runs}
    assert {f["session_id"] for f in scored} == {experiment["id"]}


def test_a_real_model_adds_the_judge_and_answer_recall(
    openai_endpoint: OpenAIEndpoint, redis: RedisServer, tmp_path: Path
) -> None:
    out = tmp_path / "r.json"
    result = alma_eval(
        "--suite", "memory", "--router", "heuristic", "--out", str(out),
        ALMA_PROVIDER="openai", OPENAI_BASE_URL=openai_endpoint.base_url,
        OPENAI_API_KEY="sk-local", ALMA_REDIS_URL=redis.url,
    )  # fmt: skip
    # Real-model scores are not held against the simulated baseline.
    assert result.returncode == 0, result.stdout + result.stderr
    assert "not compared with the simulated baseline" in result.stderr
    [memory] = json.loads(out.read_text())["suites"]
    # The judge's verdicts went through ChatOpenAI to the endpoint and came back as scores.
    assert 0.0 <= memory["scores"]["answer_quality"] <= 1.0
    assert "answer_recall" in memory["scores"]
    assert memory["scores"]["context_recall"] == 1.0
