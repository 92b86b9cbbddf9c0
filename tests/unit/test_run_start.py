"""What one run start costs in storage: the thread's log tail read once, its record written once.

Counted on the in-process app's own stores while a streamed LangGraph-API run starts,
streams and ends; the run's end writes its record a second time, and nothing else may.
"""

from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from starlette.testclient import TestClient

from server.services import Services
from tests.utils.local import until_runs_end

HAIKU = {
    "assistant_id": "manager",
    "context": {"route": "creative"},
    "input": {"messages": [{"role": "user", "content": "Write a haiku"}]},
    "stream_mode": ["values"],
}


def counting(
    calls: Counter[str], name: str, method: Callable[..., Awaitable[Any]]
) -> Callable[..., Awaitable[Any]]:
    async def counted(*args: Any, **kwargs: Any) -> Any:
        calls[name] += 1
        return await method(*args, **kwargs)

    return counted


def record_writes(services: Services, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The status of every run record written from now on, in order."""
    statuses: list[str] = []
    put = services.run_records.put

    async def recorded(record: Any) -> None:
        statuses.append(record.status)
        await put(record)

    monkeypatch.setattr(services.run_records, "put", recorded)
    return statuses


def test_a_streamed_run_reads_the_log_tail_once_and_writes_its_record_at_start_and_end(
    app_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    services: Services = app_client.app.state.services  # type: ignore[attr-defined]
    thread = app_client.post("/threads", json={}).json()["thread_id"]
    calls: Counter[str] = Counter()
    statuses = record_writes(services, monkeypatch)
    for name in ("last", "last_seq"):
        monkeypatch.setattr(services.log, name, counting(calls, name, getattr(services.log, name)))

    with app_client.stream("POST", f"/threads/{thread}/runs/stream", json=HAIKU) as response:
        assert response.status_code == 200
        body = b"".join(response.iter_bytes())
    assert b"event: values" in body
    until_runs_end(app_client)

    assert calls["last"] + calls["last_seq"] == 1, calls
    assert statuses == ["running", "success"]


def test_a_protocol_run_on_a_free_thread_is_recorded_running_then_ended(
    app_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    services: Services = app_client.app.state.services  # type: ignore[attr-defined]
    statuses = record_writes(services, monkeypatch)
    start = {"id": 1, "method": "run.start", "params": {k: v for k, v in HAIKU.items()
                                                         if k != "stream_mode"}}  # fmt: skip
    answer = app_client.post("/threads/t-recorded/commands", json=start).json()
    run_id = answer["result"]["run_id"]
    joined = app_client.get(f"/threads/t-recorded/runs/{run_id}/join")
    assert joined.status_code == 200
    until_runs_end(app_client)
    assert statuses == ["running", "success"]
