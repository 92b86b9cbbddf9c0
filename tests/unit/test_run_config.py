"""An API run's checkpoints name its caller, its request and the server, as LangGraph's do."""

from langgraph.version import __version__ as LANGGRAPH_VERSION
from starlette.testclient import TestClient

from server.version import VERSION

HAIKU = {
    "assistant_id": "manager",
    "context": {"route": "creative"},
    "input": {"messages": [{"role": "user", "content": "Write a haiku about rivers"}]},
}


def test_a_runs_checkpoints_carry_its_request_id_caller_and_server(
    app_client: TestClient,
) -> None:
    thread = app_client.post("/threads", json={}).json()["thread_id"]
    created = app_client.post(
        f"/threads/{thread}/runs", json=HAIKU, headers={"X-Request-ID": "req-42"}
    )
    assert created.json()["status"] == "pending"
    run_id = created.json()["run_id"]
    assert app_client.get(f"/threads/{thread}/runs/{run_id}/join").status_code == 200

    history = app_client.post(f"/threads/{thread}/history", json={"limit": 50}).json()
    metadata = next(state["metadata"] for state in history if state["metadata"].get("run_id"))
    assert {key: metadata[key] for key in (
        "langgraph_request_id", "user_id", "langgraph_auth_user_id", "run_attempt",
        "langgraph_version", "langgraph_api_version", "langgraph_api_url",
    )} == {
        "langgraph_request_id": "req-42", "user_id": "local", "langgraph_auth_user_id": "local",
        "run_attempt": 1, "langgraph_version": LANGGRAPH_VERSION,
        "langgraph_api_version": VERSION, "langgraph_api_url": str(app_client.base_url),
    }  # fmt: skip
    # ALMA's own names for the caller and the version give way to LangGraph's.
    assert "owner" not in metadata and "alma_version" not in metadata
