"""Watches one run from LangChain's callbacks: node and model-call timings, tokens, cost.

The graph knows nothing of it: the run manager hands it to the run in its config, and
reads the run's totals when the run ends.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGeneration, LLMResult
from langgraph.errors import GraphInterrupt

from server.observability import metrics
from server.observability.metrics import ComponentState
from server.observability.pricing import DEFAULT_PRICES, PriceTable
from server.observability.tracing import Tracing
from server.version import VERSION


@dataclass
class Observability:
    """What the run manager needs to account for runs: prices, tracing, model health."""

    prices: PriceTable = field(default_factory=lambda: PriceTable(DEFAULT_PRICES))
    tracing: Tracing = field(default_factory=lambda: Tracing(enabled=False, project="alma"))
    model: ComponentState = field(default_factory=ComponentState)
    """The latest model call: how long it took, or how it failed."""
    version: str = VERSION


@dataclass
class _Node:
    name: str
    task_id: str
    namespace: list[str]
    at: float


@dataclass
class _Call:
    started: float
    role: str
    model: str


@dataclass
class ModelTotals:
    """What one model cost a run."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0
    cost_usd: float = 0.0


class RunObserver(BaseCallbackHandler):
    """Times nodes and model calls of one run, counts its tokens and what they cost."""

    # Called in the run's own task: no thread hop per callback, and nothing here blocks.
    run_inline = True

    def __init__(
        self,
        prices: PriceTable,
        model_health: ComponentState | None = None,
        on_task: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.prices = prices
        self.model_health = model_health
        self.on_task = on_task
        """Receives a protocol `tasks` event as each node starts and ends."""
        self.models: dict[str, ModelTotals] = {}
        self._nodes: dict[UUID, _Node] = {}
        self._calls: dict[UUID, _Call] = {}

    @property
    def cost_usd(self) -> float:
        """The run's estimated cost so far."""
        return sum(totals.cost_usd for totals in self.models.values())

    # -- nodes -------------------------------------------------------------------------

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """A node starts when the chain LangGraph runs for it carries the node's name."""
        metadata = metadata or {}
        node = metadata.get("langgraph_node")
        if node is None or kwargs.get("name") != node:
            return
        # The node's checkpoint namespace ends with itself (`name:task_id`); what comes
        # before is the (sub)graph it runs in, as the protocol's namespaces name it.
        path = str(metadata.get("langgraph_checkpoint_ns") or f"{node}:{run_id}").split("|")
        task_id = path[-1].partition(":")[2] or str(run_id)
        if any(open_.task_id == task_id for open_ in self._nodes.values()):
            return  # a subgraph's own run inside its node: the same task, already open
        started = _Node(node, task_id, path[:-1], time.perf_counter())
        self._nodes[run_id] = started
        triggers = [str(t) for t in metadata.get("langgraph_triggers") or []]
        self._task(started, {"id": task_id, "name": node, "triggers": triggers})

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """Time the node that ended."""
        self._node_done(run_id, None)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """Time the node that failed."""
        self._node_done(run_id, error)

    def _node_done(self, run_id: UUID, error: BaseException | None) -> None:
        started = self._nodes.pop(run_id, None)
        if started is None:
            return
        elapsed = time.perf_counter() - started.at
        metrics.NODE_DURATION.labels(started.name).observe(elapsed)
        # A node that stopped at `interrupt()` waits for a person: it did not fail.
        interrupts = list(error.args[0]) if isinstance(error, GraphInterrupt) else []
        failed = error is not None and not isinstance(error, GraphInterrupt)
        self._task(
            started,
            {"id": started.task_id, "name": started.name,
             "interrupts": [{"id": i.id, "value": i.value} for i in interrupts],
             "error": f"{type(error).__name__}: {error}" if failed else None,
             "duration_ms": round(elapsed * 1000, 1)},
        )  # fmt: skip

    def _task(self, node: _Node, data: dict[str, Any]) -> None:
        if self.on_task is not None:
            self.on_task(
                {"type": "event", "method": "tasks",
                 "params": {"namespace": node.namespace, "timestamp": int(time.time() * 1000),
                            "node": node.name, "data": data}}
            )  # fmt: skip

    # -- model calls -------------------------------------------------------------------

    def on_chat_model_start(
        self,
        serialized: dict[str, Any] | None,
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Note when and which model a call starts."""
        metadata = metadata or {}
        self._calls[run_id] = _Call(
            started=time.perf_counter(),
            role=str(metadata.get("alma_role", "unknown")),
            model=str(metadata.get("ls_model_name", "unknown")),
        )

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        """Time the call and count its tokens and cost."""
        call = self._calls.pop(run_id, None)
        if call is None:
            return
        elapsed = time.perf_counter() - call.started
        metrics.MODEL_CALL_DURATION.labels(call.role, call.model, "ok").observe(elapsed)
        if self.model_health is not None:
            self.model_health.ok(elapsed)
        prompt, completion = _tokens(response)
        metrics.MODEL_TOKENS.labels("prompt", call.role, call.model).inc(prompt)
        metrics.MODEL_TOKENS.labels("completion", call.role, call.model).inc(completion)
        cost = self.prices.cost(call.model, prompt, completion)
        metrics.COST.labels(call.model).inc(cost)
        totals = self.models.setdefault(call.model, ModelTotals())
        totals.prompt_tokens += prompt
        totals.completion_tokens += completion
        totals.calls += 1
        totals.cost_usd += cost

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """Time the failed call and remember the error for readiness."""
        call = self._calls.pop(run_id, None)
        if call is None:
            return
        elapsed = time.perf_counter() - call.started
        metrics.MODEL_CALL_DURATION.labels(call.role, call.model, "error").observe(elapsed)
        if self.model_health is not None:
            self.model_health.failed(f"{type(error).__name__}: {error}")


def _tokens(response: LLMResult) -> tuple[int, int]:
    for generations in response.generations:
        for generation in generations:
            if isinstance(generation, ChatGeneration):
                usage = getattr(generation.message, "usage_metadata", None)
                if usage:
                    return int(usage["input_tokens"]), int(usage["output_tokens"])
    usage = (response.llm_output or {}).get("token_usage") or {}
    return int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))
