"""What the evaluations run: the manager graph, asked to route, to answer, to converse."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any, cast
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph

from graphs.interface import ROUTE_NODES, is_answer
from nodes.memory import MEMORY_NAMESPACE
from nodes.run_context import RouterMode, RunContext
from server.stores.owned_store import OwnedStore


class PromptRecorder(BaseCallbackHandler):
    """Keeps the last prompt an answering node sent to its model."""

    run_inline = True

    def __init__(self) -> None:
        self.last_prompt = ""

    def on_chat_model_start(
        self,
        serialized: dict[str, Any] | None,
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Remember the prompt when an answering node calls its model."""
        if is_answer((metadata or {}).get("langgraph_node")) and messages:
            self.last_prompt = "\n".join(message.text for message in messages[0])


@dataclass
class Harness:
    """The service's manager graph, with the calls the suites make."""

    graph: CompiledStateGraph[Any, RunContext, Any, Any]

    @staticmethod
    def _config(thread_id: str, *callbacks: BaseCallbackHandler) -> RunnableConfig:
        return {"configurable": {"thread_id": thread_id}, "callbacks": list(callbacks)}

    async def route(self, inputs: dict[str, Any], router: RouterMode) -> dict[str, Any]:
        """Only the routing: the graph stops before the chosen subgraph."""
        config = self._config(f"eval-route-{uuid.uuid4()}")
        started = time.perf_counter()
        await self.graph.ainvoke(
            {"messages": [("user", inputs["request"])]},
            config,
            context=RunContext(router=router),
            interrupt_before=list(ROUTE_NODES),
        )
        state = await self.graph.aget_state(config)
        decision = state.values.get("decision") or {}
        return {
            "route": decision.get("route"),
            "decided_by": decision.get("decided_by"),
            "confidence": decision.get("confidence"),
            "duration_ms": (time.perf_counter() - started) * 1000,
        }

    async def answer(
        self,
        inputs: dict[str, Any],
        router: RouterMode = "hybrid",
        thread_id: str | None = None,
        owner: str | None = None,
    ) -> dict[str, Any]:
        """A whole run: the answer, the plan and its steps, timing and tokens."""
        recorder = PromptRecorder()
        config = self._config(thread_id or f"eval-answer-{uuid.uuid4()}", recorder)
        if owner is not None:
            config["metadata"] = {"owner": owner}
        plan: list[str] = []
        finished = 0
        started = time.perf_counter()
        first_token: float | None = None
        async for part in self.graph.astream(
            {"messages": [("user", inputs["request"])]},
            config,
            context=RunContext(router=router),
            stream_mode=["custom", "messages"],
            subgraphs=True,
        ):
            _, mode, data = cast(tuple[Any, str, Any], part)
            if mode == "custom" and isinstance(data, dict):
                if data.get("type") == "plan":
                    plan = list(data.get("steps") or [])
                elif data.get("type") == "progress" and data.get("status") == "finished":
                    finished += 1
            elif mode == "messages" and first_token is None:
                chunk, _ = data
                if isinstance(chunk, AIMessageChunk) and chunk.text:
                    first_token = time.perf_counter()
        values = (await self.graph.aget_state(config)).values
        total = (values.get("usage") or {}).get("total") or {}
        messages = values.get("messages") or []
        error = values.get("error")
        return {
            "route": (values.get("decision") or {}).get("route"),
            "answer": messages[-1].text if messages and not error else "",
            "error": error["code"] if error else None,
            "plan": plan,
            "steps_finished": finished,
            "tokens": int(total.get("input_tokens", 0)) + int(total.get("output_tokens", 0)),
            "duration_ms": (time.perf_counter() - started) * 1000,
            "ttft_ms": None if first_token is None else (first_token - started) * 1000,
            "last_prompt": recorder.last_prompt,
        }

    async def converse(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """Every turn on one thread; what the last turn saw and answered."""
        thread_id = f"eval-memory-{uuid.uuid4()}"
        outputs: dict[str, Any] = {}
        for turn in inputs["turns"]:
            outputs = await self.answer({"request": turn}, thread_id=thread_id)
        return outputs

    async def across_threads(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """A fact told in one thread, then asked for in fresh threads.

        Asked by the same owner, by another owner, and by the same owner again after
        they deleted their memories.
        """
        owner, other = f"eval-{uuid.uuid4().hex[:12]}", f"eval-{uuid.uuid4().hex[:12]}"
        ask = {"request": inputs["ask"]}
        await self.answer({"request": inputs["told"]}, owner=owner)
        recalled = await self.answer(ask, owner=owner)
        stranger = await self.answer(ask, owner=other)
        store = self.graph.store
        assert store is not None, "the graph has no store to remember in"
        # As the owner deletes them through the store API: their view of the store.
        mine = OwnedStore(store, owner)
        for item in await mine.asearch((MEMORY_NAMESPACE,), limit=100):
            await mine.adelete((MEMORY_NAMESPACE,), item.key)
        forgotten = await self.answer(ask, owner=owner)
        return {
            **recalled,
            "after_deletion": forgotten["answer"],
            "other_owner": stranger["answer"],
        }
