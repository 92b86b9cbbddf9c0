"""Log lines: JSON with the ids bound around them, the node they came from, errors apart."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from langgraph.graph import START, MessagesState, StateGraph

from nodes.errors import ProviderServerError
from server.logs import LogSetup, bound, configure_logging


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers[:]:
        root.removeHandler(handler)
        handler.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    structlog.reset_defaults()


def read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_errors_carry_ids_code_and_the_exception_chain(
    tmp_path: Path, restore_logging: None
) -> None:
    log = tmp_path / "alma.log"
    configure_logging(LogSetup(format="json", file=log))
    logger = logging.getLogger("alma.test")
    with bound(request_id="r-1", thread_id="t-1", run_id="u-1", owner="ann", node=None):
        logger.info("ordinary line")
        try:
            try:
                raise ConnectionResetError("socket closed by peer")
            except ConnectionResetError as cause:
                raise ProviderServerError("the provider answered 500") from cause
        except ProviderServerError:
            logger.exception("model call failed")
    logger.info("outside")

    lines = read(log)
    assert [line["event"] for line in lines] == ["ordinary line", "model call failed", "outside"]
    first = lines[0]
    assert {k: first[k] for k in ("request_id", "thread_id", "run_id", "owner")} == {
        "request_id": "r-1", "thread_id": "t-1", "run_id": "u-1", "owner": "ann",
    }  # fmt: skip
    assert "node" not in first  # a `None` id is left out, not written as null
    assert "run_id" not in lines[2]  # the ids end with their block

    [error] = read(tmp_path / "alma.log.errors")
    assert error["level"] == "error"
    assert error["error_code"] == "provider_unavailable"
    assert error["run_id"] == "u-1"
    # Frames name files and lines, never local variables (they may hold prompts or keys).
    assert all("locals" not in frame for s in error["exception"] for frame in s["frames"])
    chain = [(stack["exc_type"], stack["exc_value"]) for stack in error["exception"]]
    assert chain == [
        ("ProviderServerError", "the provider answered 500"),
        ("ConnectionResetError", "socket closed by peer"),
    ]


async def test_lines_written_inside_a_node_name_the_node(
    tmp_path: Path, restore_logging: None
) -> None:
    log = tmp_path / "alma.log"
    configure_logging(LogSetup(format="json", file=log))

    async def compose(state: MessagesState) -> dict[str, Any]:
        logging.getLogger("alma.nodes").info("composing")
        return {}

    graph = StateGraph(MessagesState).add_node("compose", compose).add_edge(START, "compose")
    await graph.compile().ainvoke({"messages": []})
    logging.getLogger("alma.test").info("after the graph")

    by_event = {line["event"]: line for line in read(log)}
    assert by_event["composing"]["node"] == "compose"
    assert "node" not in by_event["after the graph"]


def test_console_lines_are_readable_and_split_by_level(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(LogSetup(format="console", split_streams=True))
    with bound(run_id="u-2"):
        logging.getLogger("alma.test").info("all fine")
        logging.getLogger("alma.test").error("not fine")
    out, err = capsys.readouterr()
    assert "all fine" in out and "run_id=u-2" in out and "not fine" not in out
    assert "not fine" in err and "all fine" not in err
    assert not out.lstrip().startswith("{")
