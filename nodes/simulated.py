"""The built-in simulated chat model: deterministic, task-shaped text, streamed like a provider.

It is a real LangChain `BaseChatModel`, so the graph runs through the same code paths as
with a hosted model: token streaming, usage metadata, structured output through tool
calls, and provider faults (timeouts, 429, 500) to exercise retries.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.chat_models import agenerate_from_stream, generate_from_stream
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, Field, PrivateAttr

from nodes.context import TokenCounter
from nodes.errors import (
    ProviderError,
    ProviderRateLimitedError,
    ProviderServerError,
    ProviderTimeoutError,
)
from nodes.simulated_replies import digest, simulate_reply

Fault = Literal["timeout", "rate_limit", "server_error"]
FAULTS: tuple[Fault, ...] = ("timeout", "rate_limit", "server_error")


class SimulatedChatModel(BaseChatModel):
    """A chat model that streams deterministic, task-shaped text at a configurable pace.

    Used when no provider is configured, and by tests and load runs. Faults are drawn
    with `fault_rate`, or taken in order from `fault_script` (deterministic tests).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model_name: str = "alma-simulated"
    ttft: float = Field(default=0.15, ge=0, description="Seconds before the first token.")
    tokens_per_second: float = Field(default=80.0, ge=0, description="0 streams at once.")
    fault_rate: float = Field(default=0.0, ge=0, le=1)
    faults: tuple[Fault, ...] = FAULTS
    fault_script: list[Fault | None] = Field(default_factory=list)
    stall_seconds: float = Field(default=3600.0, gt=0, description="How long a timeout hangs.")
    seed: int | None = None
    counter: TokenCounter = Field(default_factory=TokenCounter, exclude=True)

    _random: random.Random = PrivateAttr()
    calls: int = 0

    def model_post_init(self, context: Any, /) -> None:
        """Seed the fault generator."""
        self._random = random.Random(self.seed)

    @property
    def _llm_type(self) -> str:
        return "alma-simulated"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name}

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools so `with_structured_output` works as it does with a provider."""
        formatted = [convert_to_openai_tool(tool) for tool in tools]
        return self.bind(tools=formatted, tool_choice=tool_choice, **kwargs)

    def _next_fault(self) -> Fault | None:
        self.calls += 1
        if self.fault_script:
            return self.fault_script.pop(0)
        if self.fault_rate and self._random.random() < self.fault_rate:
            return self._random.choice(self.faults)
        return None

    def _fault_error(self, fault: Fault) -> ProviderError:
        if fault == "rate_limit":
            return ProviderRateLimitedError("simulated HTTP 429: too many requests")
        if fault == "server_error":
            return ProviderServerError("simulated HTTP 500: internal server error")
        return ProviderTimeoutError(f"simulated provider stalled for {self.stall_seconds:g}s")

    def _chunks(
        self, messages: list[BaseMessage], tools: Sequence[dict[str, Any]] | None
    ) -> Iterator[ChatGenerationChunk]:
        reply = simulate_reply(messages, tools)
        prompt_tokens = self.counter.count_messages(messages)
        if reply.tool_name is not None:
            arguments = json.dumps(reply.tool_args)
            completion_tokens = self.counter.count_text(arguments)
            call_id = f"call_{digest(arguments) % 10**12}"
            yield ChatGenerationChunk(
                message=AIMessageChunk(
                    content="",
                    tool_call_chunks=[
                        {"name": reply.tool_name, "args": arguments, "id": call_id, "index": 0}
                    ],
                )
            )
        else:
            completion_tokens = 0
            for piece in self.counter.pieces(reply.text):
                completion_tokens += 1
                yield ChatGenerationChunk(message=AIMessageChunk(content=piece), text=piece)
        usage = UsageMetadata(
            input_tokens=prompt_tokens,
            output_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens,
        )
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                usage_metadata=usage,
                response_metadata={
                    "model_name": self.model_name,
                    "model_provider": "alma-simulated",
                    "finish_reason": "tool_calls" if reply.tool_name else "stop",
                },
                chunk_position="last",
            )
        )

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        fault = self._next_fault()
        await asyncio.sleep(self.ttft)
        if fault == "timeout":
            await asyncio.sleep(self.stall_seconds)
        if fault is not None:
            raise self._fault_error(fault)
        delay = 1 / self.tokens_per_second if self.tokens_per_second else 0.0
        for chunk in self._chunks(messages, kwargs.get("tools")):
            if run_manager and chunk.text:
                await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk
            if delay and chunk.text:
                await asyncio.sleep(delay)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        fault = self._next_fault()
        time.sleep(self.ttft)
        if fault is not None:
            # A blocking call cannot be cancelled by a node timeout, so a stall is
            # reported at once instead of hanging the thread.
            raise self._fault_error(fault)
        delay = 1 / self.tokens_per_second if self.tokens_per_second else 0.0
        for chunk in self._chunks(messages, kwargs.get("tools")):
            if run_manager and chunk.text:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk
            if delay and chunk.text:
                time.sleep(delay)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return await agenerate_from_stream(self._astream(messages, stop, run_manager, **kwargs))

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return generate_from_stream(self._stream(messages, stop, run_manager, **kwargs))
