"""Log lines: JSON with the ids bound around them, the node they came from, errors apart."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
import uvicorn
from langgraph.graph import START, MessagesState, StateGraph
from starlette.applications import Starlette

from nodes.errors import ProviderServerError
from server.observability.logs import LogSetup, bound, configure_logging


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root, alma = logging.getLogger(), logging.getLogger("alma")
    handlers, level, alma_level = root.handlers[:], root.level, alma.level
    yield
    alma.setLevel(alma_level)
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


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    assert len(keys) == len(set(keys)), keys
    return dict(pairs)


async def test_uvicorn_lines_are_plain_json_without_colour_codes(
    tmp_path: Path, restore_logging: None
) -> None:
    log = tmp_path / "alma.log"
    configure_logging(LogSetup(format="json", file=log))
    config = uvicorn.Config(Starlette(), host="127.0.0.1", port=0, log_config=None)
    server = uvicorn.Server(config)
    # Start, listen and stop at once: uvicorn logs its own start and stop lines.
    server.should_exit = True
    await server.serve()

    lines = [
        json.loads(line, object_pairs_hook=unique_keys) for line in log.read_text().splitlines()
    ]
    events = [line["event"] for line in lines if line["logger"] == "uvicorn.error"]
    assert any(event.startswith("Started server process [") for event in events), events
    assert any(event.startswith("Uvicorn running on http://127.0.0.1:") for event in events)
    for line in lines:
        assert "color_message" not in line
        assert not [value for value in line.values() if "\x1b" in str(value)], line


def test_libraries_may_log_less_than_alma(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(LogSetup(format="console", libraries_level="warning", split_streams=False))
    logging.getLogger("httpx").info("HTTP Request: POST /v1/chat/completions")
    logging.getLogger("httpx").warning("connection pool is full")
    logging.getLogger("alma.memory").info("conversation memory: Redis")
    _, err = capsys.readouterr()
    assert "HTTP Request" not in err
    assert "connection pool is full" in err and "conversation memory: Redis" in err
