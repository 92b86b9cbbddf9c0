"""A run refused because its thread is busy leaves no trace in the thread's runs."""

from starlette.testclient import TestClient

HAIKU = {
    "assistant_id": "manager",
    "context": {"route": "creative"},
    "input": {"messages": [{"role": "user", "content": "Write a haiku about rivers"}]},
}


def test_a_rejected_run_is_not_left_pending(slow_client: TestClient) -> None:
    thread = slow_client.post("/threads", json={}).json()["thread_id"]
    first = slow_client.post(f"/threads/{thread}/runs", json=HAIKU)
    assert first.status_code == 200, first.text

    rejected = slow_client.post(
        f"/threads/{thread}/runs", json=HAIKU | {"multitask_strategy": "reject"}
    )
    assert rejected.status_code == 409, rejected.text

    runs = slow_client.get(f"/threads/{thread}/runs").json()
    assert [run["run_id"] for run in runs] == [first.json()["run_id"]]
    joined = slow_client.get(f"/threads/{thread}/runs/{first.json()['run_id']}/join")
    assert joined.status_code == 200
    assert [run["status"] for run in slow_client.get(f"/threads/{thread}/runs").json()] == [
        "success"
    ]
