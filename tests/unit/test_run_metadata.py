"""A run's metadata starts from its thread's, and its checkpoints carry both and the thread id."""

from starlette.testclient import TestClient

HAIKU = {
    "assistant_id": "manager",
    "context": {"route": "creative"},
    "input": {"messages": [{"role": "user", "content": "Write a haiku about rivers"}]},
}


def test_thread_metadata_reaches_the_run_and_its_checkpoints(app_client: TestClient) -> None:
    thread = app_client.post("/threads", json={"metadata": {"team": "x"}}).json()["thread_id"]
    run = app_client.post(
        f"/threads/{thread}/runs", json=HAIKU | {"metadata": {"asked_by": "ada"}}
    ).json()
    assert {"team": "x", "asked_by": "ada"}.items() <= run["metadata"].items()
    assert app_client.get(f"/threads/{thread}/runs/{run['run_id']}/join").status_code == 200

    history = app_client.post(f"/threads/{thread}/history", json={"limit": 50}).json()
    assert history and all(state["metadata"]["thread_id"] == thread for state in history)
    # The history filters by the thread's metadata, as LangGraph's server allows.
    filtered = app_client.post(
        f"/threads/{thread}/history", json={"limit": 50, "metadata": {"team": "x"}}
    ).json()
    assert len(filtered) == len([s for s in history if s["metadata"].get("run_id")]) > 0
