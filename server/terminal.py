"""Render one run of the manager graph to a terminal while it streams."""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, TextIO

from langchain_core.messages import AIMessageChunk
from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph

from graphs.manager import ANSWER_NODES
from nodes.run_context import RunContext

# The analysis steps stream as working notes; the planner's and router's raw output is
# shown in digested form instead.
NOTE_NODES = frozenset({"analyse"})


@dataclass
class Style:
    """ANSI styling, switched off when the output is not a terminal."""

    enabled: bool

    def _wrap(self, code: str, text: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.enabled else text

    def dim(self, text: str) -> str:
        """Secondary information."""
        return self._wrap("2", text)

    def bold(self, text: str) -> str:
        """Headings."""
        return self._wrap("1", text)

    def error(self, text: str) -> str:
        """Failures."""
        return self._wrap("31", text)


@dataclass
class RunReport:
    """What a finished run showed: its final state and timing."""

    state: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)
    first_token: float | None = None
    finished: float | None = None
    tokens: int = 0
    """Tokens shown: the answer's and the analysis notes'."""
    thread_id: str | None = None

    @property
    def error(self) -> dict[str, Any] | None:
        """The run's error, if it failed."""
        error: dict[str, Any] | None = self.state.get("error")
        return error


async def _stream(
    graph: CompiledStateGraph[Any, RunContext, Any, Any],
    message: str,
    *,
    config: RunnableConfig,
    context: RunContext,
) -> AsyncIterator[tuple[tuple[str, ...], str, Any]]:
    async for namespace, mode, data in graph.astream(
        {"messages": [("user", message)]},
        config,
        context=context,
        stream_mode=["messages", "updates", "custom"],
        subgraphs=True,
    ):
        yield tuple(namespace), str(mode), data


async def render_run(
    graph: CompiledStateGraph[Any, RunContext, Any, Any],
    message: str,
    *,
    config: RunnableConfig,
    context: RunContext,
    out: TextIO | None = None,
    style: Style | None = None,
) -> RunReport:
    """Run the graph on `message`, printing route, progress, tokens and usage as they come."""
    out = out or sys.stdout
    style = style or Style(enabled=out.isatty())
    report = RunReport(thread_id=config.get("configurable", {}).get("thread_id"))
    in_note = False
    async for namespace, mode, data in _stream(graph, message, config=config, context=context):
        if mode == "messages":
            chunk, metadata = data
            node = metadata.get("langgraph_node")
            if not isinstance(chunk, AIMessageChunk) or not chunk.text:
                continue
            if node not in ANSWER_NODES | NOTE_NODES:
                continue
            if report.first_token is None:
                report.first_token = time.perf_counter()
            report.tokens += 1
            if node in ANSWER_NODES:
                if in_note:
                    out.write("\n\n")
                    in_note = False
                out.write(chunk.text)
            else:
                in_note = True
                out.write(style.dim(chunk.text))
            out.flush()
        elif mode == "custom":
            _show_progress(data, out, style)
            in_note = False
        elif mode == "updates" and not namespace:
            for update in data.values():
                # The decision comes from `route`, `consult_router`, or the fallback
                # of the latter's error handler.
                if isinstance(update, dict) and update.get("decision"):
                    _show_route(update["decision"], out, style)
    report.finished = time.perf_counter()
    snapshot = await graph.aget_state(config) if graph.checkpointer else None
    report.state = dict(snapshot.values) if snapshot else {}
    out.write("\n")
    _show_summary(report, out, style)
    return report


def _show_route(decision: dict[str, Any], out: TextIO, style: Style) -> None:
    line = (
        f"→ {decision['route']} (by {decision['decided_by']}, "
        f"confidence {decision['confidence']:.2f}): {decision['reason']}"
    )
    out.write(style.dim(line) + "\n\n")


def _show_progress(event: Any, out: TextIO, style: Style) -> None:
    if not isinstance(event, dict):
        return
    if event.get("type") == "plan":
        steps = "\n".join(f"  {i}. {step}" for i, step in enumerate(event["steps"], 1))
        out.write(style.bold("Plan") + "\n" + steps + "\n\n")
    elif event.get("type") == "progress" and event.get("status") == "started":
        out.write(style.bold(f"[step {event['step']} of {event['total']}] {event['label']}") + "\n")
    elif event.get("type") == "progress":
        out.write("\n\n")


def _show_summary(report: RunReport, out: TextIO, style: Style) -> None:
    error = report.error
    if error:
        out.write(style.error(f"error [{error['code']}]: {error['message']}") + "\n")
    usage = report.state.get("usage") or {}
    total = usage.get("total") or {}
    elapsed = (report.finished or report.started) - report.started
    parts = [f"total {elapsed:.2f}s"]
    if report.thread_id:
        parts.append(f"thread {report.thread_id}")
    if report.first_token is not None:
        ttft = report.first_token - report.started
        parts.insert(0, f"first token {ttft:.2f}s")
        streaming = (report.finished or report.first_token) - report.first_token
        if streaming > 0:
            parts.append(f"{report.tokens / streaming:.0f} tok/s")
    if total:
        parts.append(
            f"tokens {total['input_tokens']} in / {total['output_tokens']} out "
            f"over {total['calls']} call{'s' if total['calls'] != 1 else ''}"
        )
    out.write(style.dim(" · ".join(parts)) + "\n")
