"""The manager's interface to the service: the only place node names and state keys live."""

import ast
from pathlib import Path

from langchain_core.messages import AIMessage

import server
from graphs.interface import (
    ANSWER_NODES,
    DRAFT_NODES,
    NOTE_NODES,
    ROUTE_NODES,
    decided_route,
    outcome_of,
    partial_answer,
    route_of_namespace,
)
from server.engine.progress import RunProgress

SERVER = Path(server.__file__).parent
# The terminal is the graph's own console: it shows the plan and the route's reasons.
CONSOLE = {"terminal.py"}
INSIDES = ROUTE_NODES | ANSWER_NODES | DRAFT_NODES | NOTE_NODES | {
    "consult_router", "decision", "usage", "plan", "findings", "draft",
}  # fmt: skip


def test_the_service_names_no_node_and_reads_no_state_key_of_the_graph() -> None:
    found = [
        f"{path.name}:{node.lineno} {node.value!r}"
        for path in SERVER.rglob("*.py")
        if path.name not in CONSOLE
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and node.value in INSIDES
    ]
    assert found == []


def test_a_finished_runs_outcome_is_read_from_its_state() -> None:
    values = {
        "decision": {"route": "analytical", "confidence": 0.9},
        "usage": {"total": {"input_tokens": 30, "output_tokens": 12}, "nodes": {}},
        "error": {"code": "provider_timeout", "message": "too slow", "retryable": True},
    }
    outcome = outcome_of(values)
    assert (outcome.route, outcome.tokens) == ("analytical", 42)
    assert outcome.error == ("provider_timeout", "too slow")
    assert outcome_of({}) == outcome_of({"decision": None, "usage": None, "error": None})
    assert (outcome_of({}).route, outcome_of({}).tokens, outcome_of({}).error) == (None, 0, None)


def test_only_the_routing_step_decides_a_route() -> None:
    decision = {"decision": {"route": "creative"}}
    assert decided_route("route", decision) == "creative"
    assert decided_route("consult_router", {"other": 1}) is None
    assert decided_route("compose", decision) is None
    assert route_of_namespace(["creative:1f2e", "compose:9a"]) == "creative"
    assert route_of_namespace("analytical:77") == "analytical"
    assert route_of_namespace([]) is None and route_of_namespace("route:1") is None


def test_a_stopped_run_keeps_the_answer_its_user_saw_and_nothing_else() -> None:
    progress = RunProgress()
    progress.text("consult_router", (), "m-0", "thinking")  # a working note: timed only
    assert progress.first_token_at is not None and progress.partial() is None
    progress.text("compose", ["creative:1"], "m-1", "")
    progress.text("compose", ["creative:1"], None, "Rivers ")
    progress.text("compose", ["creative:1"], None, "run")
    kept = progress.partial()
    assert kept is not None and kept.as_node == "creative"
    [message] = kept.values["messages"]
    assert isinstance(message, AIMessage)
    assert (message.id, message.content) == ("m-1", "Rivers run")
    assert message.response_metadata == {"cancelled": True}
    assert kept.values["error"]["code"] == "cancelled"
    # A refine pass starts a new answer message: only its text is the answer now.
    progress.text("refine", ["creative:1"], "m-2", "Streams")
    assert (kept := progress.partial()) is not None
    assert kept.values["messages"][0].content == "Streams"
    assert partial_answer("creative", "m-3", "") is None
    assert partial_answer(None, "m-3", "text") is None
