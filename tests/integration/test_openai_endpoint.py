"""The simulated OpenAI endpoint, driven by the real `ChatOpenAI` over loopback."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from functools import reduce
from operator import add
from typing import Any, Literal

import httpx
import openai
import pytest
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from nodes.prompts import PLANNER_SYSTEM, ROUTER_SYSTEM, WRITER_SYSTEM
from tests.integration.conftest import OpenAIEndpoint

pytestmark = pytest.mark.integration

HAIKU = [SystemMessage(WRITER_SYSTEM), HumanMessage("Write a haiku about rivers")]


class Person(BaseModel):
    name: str
    age: int
    member: bool


class RouteDecision(BaseModel):
    route: Literal["creative", "analytical"]
    confidence: float
    reason: str


ModelFactory = Callable[..., ChatOpenAI]


@pytest.fixture
async def chat_model(fresh_openai_endpoint: OpenAIEndpoint) -> AsyncIterator[ModelFactory]:
    """Make `ChatOpenAI` clients of the endpoint, each on its own HTTP client.

    langchain-openai shares one cached async HTTP client per base URL; its pooled
    connections belong to the event loop of the test that opened them, so each test
    gets clients of its own, closed when it ends.
    """
    clients: list[httpx.AsyncClient] = []

    def make(**kwargs: Any) -> ChatOpenAI:
        clients.append(httpx.AsyncClient())
        options: dict[str, Any] = {"stream_usage": True, "max_retries": 0, **kwargs}
        return ChatOpenAI(
            base_url=fresh_openai_endpoint.base_url,
            api_key="test-key",
            model="sim",
            http_async_client=clients[-1],
            **options,
        )

    yield make
    for client in clients:
        await client.aclose()


async def sse_events(endpoint: OpenAIEndpoint, body: dict[str, Any]) -> list[str]:
    async with (
        httpx.AsyncClient(base_url=endpoint.base_url, timeout=5.0) as client,
        client.stream("POST", "/chat/completions", json=body) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return [line async for line in response.aiter_lines() if line]


async def test_streaming_yields_tokens_and_usage_that_match_invoke(
    chat_model: ModelFactory,
) -> None:
    model = chat_model()

    chunks = [chunk async for chunk in model.astream(HAIKU)]
    streamed = reduce(add, chunks)
    invoked = await model.ainvoke(HAIKU)

    assert isinstance(streamed, AIMessageChunk)
    assert len([chunk for chunk in chunks if chunk.content]) > 5
    with_usage = [index for index, chunk in enumerate(chunks) if chunk.usage_metadata]
    last_token = max(index for index, chunk in enumerate(chunks) if chunk.content)
    assert len(with_usage) == 1 and with_usage[0] > last_token
    assert streamed.content == invoked.content
    assert streamed.usage_metadata is not None and invoked.usage_metadata is not None
    for key in ("input_tokens", "output_tokens", "total_tokens"):
        assert streamed.usage_metadata[key] == invoked.usage_metadata[key] > 0
    assert streamed.response_metadata["finish_reason"] == "stop"


async def test_writer_prompt_gets_a_three_line_haiku(chat_model: ModelFactory) -> None:
    reply = await chat_model().ainvoke(HAIKU)

    assert len(reply.text.splitlines()) == 3
    assert "rivers" in reply.text


async def test_planner_prompt_gets_a_json_list_of_steps(chat_model: ModelFactory) -> None:
    prompt = [
        SystemMessage(PLANNER_SYSTEM.format(max_steps=3)),
        HumanMessage("Compare Redis and Postgres for a job queue"),
    ]

    reply = await chat_model().ainvoke(prompt)

    steps = json.loads(reply.text)
    assert isinstance(steps, list) and 1 <= len(steps) <= 3
    assert all(isinstance(step, str) for step in steps)


async def test_structured_output_by_function_calling_parses_the_tool_call(
    chat_model: ModelFactory,
) -> None:
    model = chat_model()
    router = model.with_structured_output(RouteDecision, method="function_calling")

    decision = await router.ainvoke(
        [SystemMessage(ROUTER_SYSTEM), HumanMessage("Write a poem about the sea")]
    )
    person = await model.with_structured_output(Person, method="function_calling").ainvoke(
        "Describe a member"
    )

    assert isinstance(decision, RouteDecision) and decision.route == "creative"
    assert isinstance(person, Person)


async def test_structured_output_by_json_schema_parses_the_content(
    chat_model: ModelFactory,
) -> None:
    structured = chat_model().with_structured_output(Person, method="json_schema")

    person = await structured.ainvoke("Describe a member")

    assert isinstance(person, Person)
    assert person.member is True


async def test_streamed_tool_call_arrives_in_pieces(chat_model: ModelFactory) -> None:
    model = chat_model().bind_tools([Person], tool_choice="Person")

    chunks = [chunk async for chunk in model.astream("Describe a member")]
    message = reduce(add, chunks)

    assert isinstance(message, AIMessageChunk)
    pieces = [c for c in chunks if isinstance(c, AIMessageChunk) and c.tool_call_chunks]
    assert len(pieces) > 3
    assert message.tool_calls[0]["name"] == "Person"
    assert Person.model_validate(message.tool_calls[0]["args"])
    assert message.response_metadata["finish_reason"] == "tool_calls"
    assert message.usage_metadata is not None and message.usage_metadata["output_tokens"] > 0


async def test_tool_call_history_is_accepted(chat_model: ModelFactory) -> None:
    history = [
        HumanMessage("Who is the member?"),
        AIMessage("", tool_calls=[{"name": "Person", "args": {"name": "Ada"}, "id": "call_1"}]),
        ToolMessage('{"age": 36}', tool_call_id="call_1"),
        HumanMessage("Summarise"),
    ]

    reply = await chat_model().ainvoke(history)

    assert reply.text == "(simulated reply) You said: Summarise"


async def test_scripted_faults_surface_as_openai_errors_then_recover(
    fresh_openai_endpoint: OpenAIEndpoint, chat_model: ModelFactory
) -> None:
    model = chat_model()
    await fresh_openai_endpoint.set_faults(script=["rate_limit", "server_error"])

    with pytest.raises(openai.RateLimitError) as limited:
        await model.ainvoke("hello")
    with pytest.raises(openai.InternalServerError) as failed:
        await model.ainvoke("hello")
    reply = await model.ainvoke("hello")

    assert limited.value.status_code == 429
    assert limited.value.code == "rate_limit_exceeded"
    assert limited.value.response.headers["retry-after"] == "1"
    assert failed.value.status_code == 500
    assert failed.value.code == "server_error"
    assert reply.text


async def test_timeout_fault_makes_the_client_give_up(
    fresh_openai_endpoint: OpenAIEndpoint, chat_model: ModelFactory
) -> None:
    await fresh_openai_endpoint.set_faults(script=["timeout"])

    with pytest.raises(openai.APITimeoutError):
        await chat_model(timeout=0.5).ainvoke("hello")
    reply = await chat_model(timeout=5).ainvoke("hello")

    assert reply.text


async def test_random_faults_are_drawn_from_the_given_kinds(
    fresh_openai_endpoint: OpenAIEndpoint, chat_model: ModelFactory
) -> None:
    await fresh_openai_endpoint.set_faults(rate=1.0, kinds=["server_error"])

    for _ in range(3):
        with pytest.raises(openai.InternalServerError):
            await chat_model().ainvoke("hello")

    assert (await fresh_openai_endpoint.stats())["outcomes"]["server_error"] == 3


async def test_stats_count_each_outcome_and_the_tokens_served(
    fresh_openai_endpoint: OpenAIEndpoint, chat_model: ModelFactory
) -> None:
    model = chat_model()
    invoked = await model.ainvoke(HAIKU)
    streamed = reduce(add, [chunk async for chunk in model.astream(HAIKU)])
    await fresh_openai_endpoint.set_faults(script=["rate_limit", "server_error", "timeout"])
    with pytest.raises(openai.RateLimitError):
        await model.ainvoke("hello")
    with pytest.raises(openai.InternalServerError):
        await model.ainvoke("hello")
    with pytest.raises(openai.APITimeoutError):
        await chat_model(timeout=0.5).ainvoke("hello")

    stats = await fresh_openai_endpoint.stats()

    assert invoked.usage_metadata is not None and streamed.usage_metadata is not None
    assert stats == {
        "requests": 5,
        "outcomes": {"ok": 2, "rate_limit": 1, "server_error": 1, "timeout": 1},
        "streamed": 1,
        "non_streamed": 4,
        "prompt_tokens": 2 * invoked.usage_metadata["input_tokens"],
        "completion_tokens": 2 * invoked.usage_metadata["output_tokens"],
    }


async def test_reset_clears_stats_and_script(
    fresh_openai_endpoint: OpenAIEndpoint, chat_model: ModelFactory
) -> None:
    await chat_model().ainvoke("hello")
    await fresh_openai_endpoint.set_faults(script=["rate_limit"])

    await fresh_openai_endpoint.reset()
    reply = await chat_model().ainvoke("hello")

    assert reply.text
    assert (await fresh_openai_endpoint.stats())["outcomes"]["ok"] == 1


async def test_stream_without_stream_options_sends_no_usage_chunk(
    fresh_openai_endpoint: OpenAIEndpoint,
) -> None:
    body = {"model": "sim", "stream": True, "messages": [{"role": "user", "content": "hi"}]}

    lines = await sse_events(fresh_openai_endpoint, body)

    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all(chunk["choices"] and chunk.get("usage") is None for chunk in chunks)


async def test_stream_with_include_usage_ends_with_a_usage_chunk(
    fresh_openai_endpoint: OpenAIEndpoint,
) -> None:
    body = {
        "model": "sim",
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
    }

    lines = await sse_events(fresh_openai_endpoint, body)

    usage_chunk = json.loads(lines[-2].removeprefix("data: "))
    assert lines[-1] == "data: [DONE]"
    assert usage_chunk["choices"] == []
    usage = usage_chunk["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


async def test_max_tokens_cuts_the_reply_with_finish_reason_length(
    chat_model: ModelFactory,
) -> None:
    reply = await chat_model(max_tokens=3).ainvoke(HAIKU)

    assert reply.response_metadata["finish_reason"] == "length"
    assert reply.usage_metadata is not None and reply.usage_metadata["output_tokens"] <= 3


async def test_invalid_request_gets_an_openai_error(fresh_openai_endpoint: OpenAIEndpoint) -> None:
    async with httpx.AsyncClient(base_url=fresh_openai_endpoint.base_url) as client:
        response = await client.post("/chat/completions", json={"model": "sim", "messages": []})

    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


async def test_models_lists_the_served_model(openai_endpoint: OpenAIEndpoint) -> None:
    async with httpx.AsyncClient(base_url=openai_endpoint.base_url) as client:
        response = await client.get("/models")

    assert response.status_code == 200
    assert [model["id"] for model in response.json()["data"]] == ["sim"]
