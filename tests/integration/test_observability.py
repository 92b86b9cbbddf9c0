"""What operators see: metrics after real runs, log lines, readiness, LangSmith traces."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from server.agent_protocol.client import open_thread
from server.version import VERSION
from tests.utils.langsmith_stand_in import PROJECT_ID, TENANT_ID, langsmith_stand_in
from tests.utils.redis_server import RedisServer
from tests.utils.service import Service, alma_service

pytestmark = pytest.mark.integration

CREATIVE = "Write a haiku about rivers"
ANALYTICAL = "Compare Redis and PostgreSQL for a job queue, step by step"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of a metrics page, by name and labels."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def scrape(url: str) -> Samples:
    """Every sample of the service's `/metrics`."""
    return parse(httpx.get(f"{url}/metrics", timeout=10).text)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


async def run_once(url: str, text: str, *, thread_id: str | None = None) -> dict[str, Any]:
    """Start a run over WebSocket and return its final lifecycle event's data."""
    async with open_thread(url, thread_id or str(uuid.uuid4())) as client:
        await client.subscribe("lifecycle", "messages")
        await client.start(text)
        events = await client.until_terminal()
    data: dict[str, Any] = events[-1]["params"]["data"]
    return data


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="module")
def service(redis: RedisServer, log_dir: Path) -> Iterator[Service]:
    env = {
        "ALMA_LOG_FILE": str(log_dir / "alma.log"),
        "ALMA_LOG_ROTATE_BYTES": "4000",
        "ALMA_LOG_BACKUPS": "3",
        "ALMA_METRICS_SAMPLE_SECONDS": "0.2",
    }
    with alma_service(redis.url, prefix=f"obs-{uuid.uuid4().hex[:6]}", env=env) as service:
        yield service


async def test_metrics_follow_a_creative_and_an_analytical_run(service: Service) -> None:
    before = scrape(service.url)
    creative = await run_once(service.url, CREATIVE)
    analytical = await run_once(service.url, ANALYTICAL)
    after = scrape(service.url)

    def grew(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    assert creative["event"] == analytical["event"] == "completed"
    assert (creative["route"], analytical["route"]) == ("creative", "analytical")
    for data in (creative, analytical):
        assert 0 < data["time_to_first_token_ms"] <= data["duration_ms"]
        assert data["cost_usd"] == 0.0  # the simulated model is priced at 0
        assert sum(m["completion_tokens"] for m in data["models"].values()) > 0
        assert "trace_url" not in data  # tracing is off

    assert grew("alma_runs_started_total") == 2
    for route in ("creative", "analytical"):
        assert grew("alma_runs_finished_total", route=route, outcome="completed") == 1
        assert grew("alma_time_to_first_token_seconds_count", route=route) == 1
        assert grew("alma_run_duration_seconds_count", route=route, outcome="completed") == 1
        assert grew("alma_tokens_per_second_count", route=route) == 1
    # Nodes of both routes were timed; the analytical one analysed its plan twice or more.
    for node in ("route", "creative", "analytical", "compose", "plan", "synthesise"):
        assert grew("alma_node_duration_seconds_count", node=node) >= 1, node
    assert grew("alma_node_duration_seconds_count", node="analyse") >= 2
    # Model calls by role and model, with their tokens.
    for role in ("creative", "analytical"):
        model = f"alma-simulated-{role}"
        assert grew("alma_model_call_duration_seconds_count", role=role, model=model) >= 1
        assert grew("alma_model_tokens_total", kind="prompt", role=role, model=model) > 0
        assert grew("alma_model_tokens_total", kind="completion", role=role, model=model) > 0
    tokens = sum(
        m["completion_tokens"] for d in (creative, analytical) for m in d["models"].values()
    )
    assert grew("alma_model_tokens_total", kind="completion") == tokens
    # Storage, connections and resources.
    # Each run saves its steps once, as it ends (ALMA_DURABILITY=exit).
    assert grew("alma_checkpointer_seconds_count", operation="put") >= 2
    assert grew("alma_checkpointer_seconds_count", operation="get_tuple") >= 2
    assert grew("alma_messages_sent_total", transport="websocket") > tokens / 2
    assert total(after, "alma_redis_roundtrip_seconds_count") >= 1
    assert total(after, "alma_redis_up") == 1
    assert total(after, "alma_process_resident_memory_bytes") > 20_000_000
    assert total(after, "alma_process_cpu_seconds_total") > 0
    assert total(after, "alma_process_open_fds") > 5
    assert total(after, "alma_asyncio_tasks") >= 2
    assert total(after, "alma_event_loop_lag_seconds") >= 0
    assert grew("alma_http_requests_total", route="/metrics", status="200") == 1


async def test_log_lines_are_json_with_ids_and_the_file_rotates(
    service: Service, log_dir: Path
) -> None:
    thread_id = str(uuid.uuid4())
    request_id = f"req-{uuid.uuid4().hex[:8]}"
    answer = httpx.post(
        f"{service.url}/threads/{thread_id}/commands",
        headers={"x-request-id": request_id},
        json={"id": 1, "method": "run.start", "params": {
            "assistant_id": "manager",
            "input": {"messages": [{"role": "user", "content": CREATIVE}]}}},
        timeout=10,
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-request-id"] == request_id
    run_id = answer.json()["result"]["run_id"]
    # Traffic until three backups exist, then as much again: rotation goes on, and only
    # the newest three backups are kept.
    for _ in range(40):
        if (log_dir / "alma.log.3").exists():
            break
        await run_once(service.url, CREATIVE)
    for _ in range(10):
        await run_once(service.url, CREATIVE)

    rotated = sorted(p.name for p in log_dir.glob("alma.log.*") if "errors" not in p.name)
    assert rotated == ["alma.log.1", "alma.log.2", "alma.log.3"]  # three backups kept
    for path in log_dir.glob("alma.log*"):
        assert all(json.loads(line)["event"] for line in path.read_text().splitlines())

    records = service_lines(service)
    mine = [r for r in records if r.get("run_id") == run_id]
    started = next(r for r in mine if "started" in r["event"])
    assert started["thread_id"] == thread_id
    assert started["request_id"] == request_id
    assert started["owner"] == "local"
    assert started["level"] == "info" and started["timestamp"].endswith("Z")
    ended = next(r for r in mine if r.get("outcome") == "completed")
    assert (ended["thread_id"], ended["route"], ended["owner"]) == (thread_id, "creative", "local")
    access = [r for r in records if r.get("logger") == "alma.access"]
    assert access and all(r["request_id"] and r["status"] for r in access)
    # uvicorn's own lines pass through the same formatter.
    assert any(r.get("logger", "").startswith("uvicorn") for r in records)


def service_lines(service: Service) -> list[dict[str, Any]]:
    """The service's console output, one JSON object per line."""
    return [json.loads(line) for line in service.process.output if line.startswith("{")]


def test_ready_names_each_dependency_with_latency(service: Service) -> None:
    ready = httpx.get(f"{service.url}/ready", timeout=10).json()
    components = ready["components"]
    assert ready["ready"] is True
    assert components["redis"]["status"] == "ok"
    assert components["redis"]["latency_ms"] > 0
    assert components["redis"]["last_error"] is None
    assert components["model"]["status"] == "degraded"  # simulated
    assert "langsmith" not in components


@pytest.fixture(scope="module")
def faulty_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("faulty-logs")


@pytest.fixture(scope="module")
def faulty(redis: RedisServer, faulty_logs: Path) -> Iterator[Service]:
    """A service whose model always fails, with a two-run limit and an error log file."""
    logs = faulty_logs
    env = {
        "ALMA_SIMULATED_FAULT_RATE": "1.0",
        "ALMA_SIMULATED_FAULTS": '["server_error"]',
        "ALMA_MODEL_ATTEMPTS": "2",
        "ALMA_MODEL_RETRY_INTERVAL": "0.01",
        "ALMA_LIMIT_RUNS": "2",
        "ALMA_LOG_FILE": str(logs / "alma.log"),
    }
    with alma_service(redis.url, prefix=f"faulty-{uuid.uuid4().hex[:6]}", env=env) as service:
        yield service


async def test_failures_and_refusals_are_counted_and_logged_as_errors(
    faulty: Service, faulty_logs: Path
) -> None:
    before = scrape(faulty.url)
    first = await run_once(faulty.url, CREATIVE)
    await run_once(faulty.url, ANALYTICAL)
    refused = httpx.post(
        f"{faulty.url}/threads/{uuid.uuid4()}/commands",
        json={"id": 1, "method": "run.start", "params": {
            "assistant_id": "manager",
            "input": {"messages": [{"role": "user", "content": CREATIVE}]}}},
        timeout=10,
    )  # fmt: skip
    after = scrape(faulty.url)

    assert first["event"] == "failed"
    code = first["code"]
    assert code == "provider_unavailable"
    assert refused.status_code == 429
    assert (
        total(after, "alma_runs_finished_total", outcome="failed", code=code)
        - total(before, "alma_runs_finished_total", outcome="failed", code=code)
        == 2
    )
    failed_calls = total(after, "alma_model_call_duration_seconds_count", outcome="error")
    assert (
        failed_calls - total(before, "alma_model_call_duration_seconds_count", outcome="error") >= 4
    )
    assert total(after, "alma_rate_limit_refusals_total", limit="runs") == 1

    model = httpx.get(f"{faulty.url}/ready", timeout=10).json()["components"]["model"]
    assert model["last_error"]
    assert model["last_error_at"] > 0

    errors_file = faulty_logs / "alma.log.errors"
    errors = [json.loads(line) for line in errors_file.read_text().splitlines()]
    assert errors and all(e["level"] == "error" for e in errors)
    failure = errors[0]
    assert failure["error_code"] == code
    assert failure["node"] in ("compose", "route", "plan")
    assert failure["run_id"] and failure["thread_id"]
    # The exception is data, chain included.
    assert failure["exception"][0]["exc_type"]


def test_two_workers_answer_for_each_other(redis: RedisServer) -> None:
    env = {"ALMA_WORKERS": "2"}
    with alma_service(redis.url, prefix=f"workers-{uuid.uuid4().hex[:6]}", env=env) as service:

        async def runs() -> list[dict[str, Any]]:
            return [await run_once(service.url, text) for text in (CREATIVE, ANALYTICAL) * 2]

        finished = asyncio.run(runs())
        assert [d["route"] for d in finished] == ["creative", "analytical"] * 2
        # Each fresh connection lands on either worker; `/health` says which one.
        seen: dict[str, Samples] = {}
        for _ in range(200):
            with httpx.Client(base_url=service.url, timeout=10) as client:
                instance = client.get("/health").json()["instance"]
                seen[instance] = parse(client.get("/metrics").text)
            if len(seen) == 2:
                break
        assert len(seen) == 2, "every connection went to one worker"
        for samples in seen.values():
            assert total(samples, "alma_runs_started_total") == 4
            assert total(samples, "alma_runs_finished_total", outcome="completed") == 4
            assert total(samples, "alma_time_to_first_token_seconds_count") == 4
            # Both workers' memory is summed.
            assert total(samples, "alma_process_resident_memory_bytes") > 2 * 20_000_000


async def test_traces_reach_langsmith_with_ids_route_and_version(redis: RedisServer) -> None:
    with langsmith_stand_in() as langsmith:
        env = {
            "LANGSMITH_TRACING": "true",
            "LANGSMITH_ENDPOINT": langsmith.url,
            "LANGSMITH_API_KEY": "lsv2-test",
            "LANGSMITH_PROJECT": "alma-tests",
        }
        prefix = f"traced-{uuid.uuid4().hex[:6]}"
        with alma_service(redis.url, prefix=prefix, env=env) as service:
            thread_id = str(uuid.uuid4())
            final = await run_once(service.url, ANALYTICAL, thread_id=thread_id)
            run_id = final["run_id"]
            assert final["trace_url"] == (
                f"http://localhost/o/{TENANT_ID}/projects/p/{PROJECT_ID}/r/{run_id}?poll=true"
            )
            root = langsmith.recorded.wait_for(
                lambda r: (
                    (run := r.runs.get(run_id))
                    and "route:analytical" in run.get("tags", [])
                    and run
                )
            )
            ready = httpx.get(f"{service.url}/ready", timeout=10).json()
        metadata = root["extra"]["metadata"]
        assert metadata["thread_id"] == thread_id
        assert metadata["run_id"] == run_id
        assert metadata["owner"] == "local"
        assert metadata["alma_version"] == VERSION
        assert metadata["route"] == "analytical"
        assert {"alma", f"alma:{VERSION}"} <= set(root["tags"])
        assert root["session_name"] == "alma-tests"
        # The graph's nodes and model calls are traced under the run.
        children = [r for r in langsmith.recorded.runs.values() if r.get("trace_id") == run_id]
        assert {"plan", "synthesise"} <= {r.get("name") for r in children}
        assert ready["components"]["langsmith"]["status"] == "ok"


async def test_tracing_off_makes_no_connection(redis: RedisServer) -> None:
    with langsmith_stand_in() as langsmith:
        env = {
            "LANGSMITH_TRACING": "false",
            "LANGSMITH_ENDPOINT": langsmith.url,
            "LANGSMITH_API_KEY": "lsv2-test",
        }
        with alma_service(redis.url, prefix=f"untraced-{uuid.uuid4().hex[:6]}", env=env) as svc:
            final = await run_once(svc.url, CREATIVE)
            assert final["event"] == "completed"
        assert langsmith.recorded.connections == 0


async def test_unreachable_langsmith_neither_blocks_nor_fails_runs(redis: RedisServer) -> None:
    from tests.utils.processes import free_port

    env = {
        "LANGSMITH_TRACING": "true",
        # Nothing listens here: every trace export and project lookup fails.
        "LANGSMITH_ENDPOINT": f"http://127.0.0.1:{free_port()}",
        "LANGSMITH_API_KEY": "lsv2-test",
    }
    with alma_service(redis.url, prefix=f"lost-{uuid.uuid4().hex[:6]}", env=env) as service:
        for text in (CREATIVE, ANALYTICAL):
            final = await run_once(service.url, text)
            assert final["event"] == "completed"
            assert "trace_url" not in final
        ready = httpx.get(f"{service.url}/ready", timeout=10).json()
        assert ready["ready"] is True
        assert ready["components"]["langsmith"]["status"] == "degraded"
        assert ready["components"]["langsmith"]["last_error"]
