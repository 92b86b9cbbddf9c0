"""A run record left `running` by a run that runs nowhere reaches a terminal status.

The process that runs a run writes its end; one that died, or lost Redis while writing
it, leaves `running` behind, which the owner could neither cancel nor delete.
"""

from starlette.testclient import TestClient

from server.engine.events import lifecycle, numbered
from server.services import Services
from server.stores.run_records import RunRecord


def leave_running(client: TestClient, thread_id: str, run_id: str, *, logged_end: bool) -> None:
    services: Services = client.app.state.services  # type: ignore[attr-defined]

    async def write() -> None:
        record = RunRecord(run_id=run_id, thread_id=thread_id, assistant_id="manager",
                           status="running", first_seq=1)  # fmt: skip
        await services.run_records.put(record)
        events = [numbered(lifecycle("running", run_id=run_id), 1)]
        if logged_end:
            ending = lifecycle("failed", run_id=run_id, error="storage", code="storage_unavailable")
            events.append(numbered(ending, 2))
        await services.log.append(thread_id, events)

    client.portal.call(write)  # type: ignore[union-attr]


def test_a_run_lost_with_its_process_ends_as_lost_and_can_be_deleted(
    app_client: TestClient,
) -> None:
    thread = app_client.post("/threads", json={}).json()["thread_id"]
    leave_running(app_client, thread, "run-lost", logged_end=False)

    [listed] = app_client.get(f"/threads/{thread}/runs").json()
    assert listed["status"] == "error"
    got = app_client.get(f"/threads/{thread}/runs/run-lost").json()
    assert got["status"] == "error"
    assert app_client.delete(f"/threads/{thread}/runs/run-lost").status_code == 204


def test_a_run_whose_end_was_logged_takes_its_status_from_the_log(app_client: TestClient) -> None:
    thread = app_client.post("/threads", json={}).json()["thread_id"]
    leave_running(app_client, thread, "run-logged", logged_end=True)
    got = app_client.get(f"/threads/{thread}/runs/run-logged").json()
    assert got["status"] == "error"
    joined = app_client.get(f"/threads/{thread}/runs/run-logged/join")
    assert joined.status_code == 200


def test_a_run_that_is_running_is_left_running(slow_client: TestClient) -> None:
    thread = slow_client.post("/threads", json={}).json()["thread_id"]
    haiku = {"assistant_id": "manager", "context": {"route": "creative"},
             "input": {"messages": [{"role": "user", "content": "Write a haiku"}]}}  # fmt: skip
    run_id = slow_client.post(f"/threads/{thread}/runs", json=haiku).json()["run_id"]
    [listed] = slow_client.get(f"/threads/{thread}/runs").json()
    assert listed["status"] in ("pending", "running")
    assert slow_client.get(f"/threads/{thread}/runs/{run_id}/join").status_code == 200
    assert slow_client.get(f"/threads/{thread}/runs/{run_id}").json()["status"] == "success"
