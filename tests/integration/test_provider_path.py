"""The manager through the real `ChatOpenAI` path: HTTP, SSE parsing, usage, retries."""

from collections.abc import AsyncIterator

import pytest
from langchain_core.messages import AIMessageChunk

from nodes.models import ModelProvider, ModelSettings
from nodes.run_context import RunContext
from tests.integration.conftest import OpenAIEndpoint
from tests.utils.graphs import ask, manager, new_thread

pytestmark = pytest.mark.integration


@pytest.fixture
async def provider(fresh_openai_endpoint: OpenAIEndpoint) -> AsyncIterator[ModelProvider]:
    settings = ModelSettings(
        provider="openai",
        openai_base_url=fresh_openai_endpoint.base_url,
        openai_api_key="test-key",
        model_attempts=3,
        model_retry_interval=0.01,
        model_retry_jitter=False,
        model_idle_timeout=0.5,
    )
    provider = ModelProvider.from_settings(settings)
    assert not provider.is_simulated
    yield provider
    await provider.aclose()


async def test_creative_answer_streams_over_sse_with_provider_usage(
    provider: ModelProvider, fresh_openai_endpoint: OpenAIEndpoint
) -> None:
    graph = manager(provider)
    chunks = []
    async for namespace, mode, data in graph.astream(
        {"messages": [("user", "Write a haiku about rivers")]},
        new_thread(),
        context=RunContext(),
        stream_mode=["messages", "values"],
        subgraphs=True,
    ):
        if mode == "messages" and namespace:
            chunk, metadata = data
            assert isinstance(chunk, AIMessageChunk)
            chunks.append(chunk)
        if mode == "values" and not namespace:
            state = data
    text = "".join(chunk.text for chunk in chunks)
    assert len([c for c in chunks if c.text]) > 5
    assert state["messages"][-1].text == text
    assert len(text.splitlines()) == 3

    stats = await fresh_openai_endpoint.stats()
    assert stats["streamed"] == 1
    usage = state["usage"]["total"]
    # The figures are the provider's own, from the usage chunk of the stream.
    assert usage["input_tokens"] == stats["prompt_tokens"]
    assert usage["output_tokens"] == stats["completion_tokens"]
    assert usage["calls"] == 1


async def test_llm_router_and_analytical_route_over_http(
    provider: ModelProvider, fresh_openai_endpoint: OpenAIEndpoint
) -> None:
    state = await ask(
        manager(provider), "Compare quicksort and mergesort", router="llm", max_plan_steps=2
    )
    assert state["decision"]["decided_by"] == "llm"
    assert state["decision"]["route"] == "analytical"
    assert state["messages"][-1].text.startswith("## Answer")
    assert set(state["usage"]["nodes"]) == {"consult_router", "plan", "analyse", "synthesise"}
    stats = await fresh_openai_endpoint.stats()
    assert stats["requests"] == 5  # route, plan, two steps, synthesis
    assert state["usage"]["total"]["total_tokens"] == (
        stats["prompt_tokens"] + stats["completion_tokens"]
    )


async def test_429_and_500_are_retried_and_the_answer_arrives(
    provider: ModelProvider, fresh_openai_endpoint: OpenAIEndpoint
) -> None:
    await fresh_openai_endpoint.set_faults(script=["rate_limit", "server_error"])
    state = await ask(manager(provider), "Write a haiku about rivers")
    assert state.get("error") is None
    assert state["messages"][-1].type == "ai"
    stats = await fresh_openai_endpoint.stats()
    assert stats["outcomes"] == {"ok": 1, "rate_limit": 1, "server_error": 1, "timeout": 0}


async def test_a_stalled_stream_times_out_and_is_retried(
    provider: ModelProvider, fresh_openai_endpoint: OpenAIEndpoint
) -> None:
    await fresh_openai_endpoint.set_faults(script=["timeout"])
    state = await ask(manager(provider), "Write a haiku about rivers")
    assert state.get("error") is None
    stats = await fresh_openai_endpoint.stats()
    assert stats["outcomes"]["timeout"] == 1
    assert stats["outcomes"]["ok"] == 1


async def test_exhausted_retries_end_with_a_clear_error(
    provider: ModelProvider, fresh_openai_endpoint: OpenAIEndpoint
) -> None:
    await fresh_openai_endpoint.set_faults(script=["server_error"] * 3)
    state = await ask(manager(provider), "Write a haiku about rivers")
    assert state["error"]["code"] == "provider_unavailable"
    assert state["error"]["node"] == "compose"
    assert state["error"]["retryable"] is True
    assert (await fresh_openai_endpoint.stats())["outcomes"]["server_error"] == 3
