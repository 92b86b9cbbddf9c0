"""Long-term memory across threads: what is kept, whose it is, and how answers use it."""

from typing import Any

import pytest
from langchain_core.messages import HumanMessage, SystemMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from graphs.manager import build_manager_graph
from memory.namespaces import owned_namespace
from nodes.memory import (
    LOCAL_OWNER,
    Memory,
    memory_key,
    memory_namespace,
    owner_of,
    rememberable,
    states_something,
    with_memories,
)
from nodes.models import ModelProvider
from nodes.prompts import WRITER_SYSTEM
from nodes.run_context import RunContext
from nodes.simulated_replies import simulate_reply
from server.stores.owned_store import OwnedStore

ADA = "Hi, I'm Ada. I work in Rust and I prefer short answers."


def test_the_extractor_keeps_facts_of_known_kinds_under_stable_keys() -> None:
    facts = rememberable(ADA)
    assert [(memory_key(f.kind, f.value, f.topic), f.said) for f in facts] == [
        ("name", "your name is Ada"),
        ("likes:short-answers", "you prefer short answers"),
        ("work", "you work in Rust"),
    ]
    # A whole statement says nothing lasting; a request or a question states nothing.
    assert rememberable("The weather is nice today.") == []
    assert rememberable("Write a poem about my work.") == []
    assert not states_something("What is my name?")
    assert states_something("My favourite colour is teal")
    [favourite] = rememberable("My favourite colour is teal")
    assert memory_key(favourite.kind, favourite.value, favourite.topic) == "favourite:colour"


def test_a_runs_owner_is_the_protocols_then_langgraphs_else_local() -> None:
    assert owner_of({"metadata": {"owner": "ada"}, "configurable": {"user_id": "eve"}}) == "ada"
    assert owner_of({"configurable": {"user_id": "bob"}}) == "bob"
    assert owner_of({"configurable": {"langgraph_auth_user_id": "cy"}}) == "cy"
    assert owner_of({}) == LOCAL_OWNER


def test_memories_are_stored_where_the_store_api_shows_them_to_their_owner() -> None:
    for owner in ("ada", "carol.writer"):
        assert memory_namespace(owner) == owned_namespace(owner, ("memories",))


def test_the_simulated_writer_says_which_remembered_fact_it_used() -> None:
    memories = [Memory(key="work", said="you work in Rust", source="I work in Rust.")]
    system = with_memories(WRITER_SYSTEM, memories)
    assert 'you work in Rust (you said: "I work in Rust.")' in system
    assert with_memories(WRITER_SYSTEM, []) == WRITER_SYSTEM
    reply = simulate_reply([SystemMessage(system), HumanMessage("Write a poem about my work.")])
    assert "Rust" in reply.text
    assert reply.text.endswith("Remembered: you work in Rust")
    # A remembered fact the piece does not use is not claimed.
    reply = simulate_reply([SystemMessage(system), HumanMessage("Write a haiku about the sea.")])
    assert "Remembered" not in reply.text


def provider(*, simulated: bool = True) -> ModelProvider:
    made = ModelProvider.simulated()
    if simulated:
        return made
    # The simulated model behind a provider that claims to be real: the extraction
    # goes through the router model's structured output, as with a hosted model.
    return ModelProvider(
        models={role: made.chat_model(role) for role in ("router", "creative", "analytical")},
        roles={role: made.role(role) for role in ("router", "creative", "analytical")},
        policy=made.policy,
        description="structured",
        simulated=False,
    )


class Threads:
    """The manager graph on one store, spoken to as several owners in several threads."""

    def __init__(self, models: ModelProvider) -> None:
        self.store = InMemoryStore()
        self.graph = build_manager_graph(
            provider=models, checkpointer=InMemorySaver(), store=self.store
        )

    async def say(self, owner: str, thread: str, text: str, **context: Any) -> str:
        config: Any = {"configurable": {"thread_id": thread}, "metadata": {"owner": owner}}
        values = await self.graph.ainvoke(
            {"messages": [HumanMessage(text)]}, config, context=RunContext(**context)
        )
        return str(values["messages"][-1].text)

    def keys(self, owner: str) -> set[str]:
        return {item.key for item in self.store.search(memory_namespace(owner))}


@pytest.mark.parametrize("simulated", [True, False], ids=["rules", "structured-output"])
async def test_a_fact_told_in_one_thread_is_used_in_another_of_the_same_owner(
    simulated: bool,
) -> None:
    threads = Threads(provider(simulated=simulated))
    await threads.say("ada", "a-1", ADA)
    assert threads.keys("ada") == {"name", "work", "likes:short-answers"}
    poem = await threads.say("ada", "a-2", "Write a short poem about my work.")
    assert "Rust" in poem and "Remembered: you work in Rust" in poem
    analysis = await threads.say("ada", "a-3", "Compare two sorting algorithms for my work.")
    assert analysis.rstrip().endswith("Remembered: you work in Rust")
    # Another owner neither has nor gets it.
    assert threads.keys("bob") == set()
    other = await threads.say("bob", "b-1", "Write a short poem about my work.")
    assert "Rust" not in other and "Remembered" not in other


async def test_a_newer_statement_replaces_the_older_and_deletion_stops_its_use() -> None:
    threads = Threads(provider())
    await threads.say("ada", "a-1", "I work in Rust.")
    await threads.say("ada", "a-2", "I work in Go.")
    [item] = threads.store.search(memory_namespace("ada"))
    assert item.value["said"] == "you work in Go"
    await OwnedStore(threads.store, "ada").adelete(("memories",), "work")
    poem = await threads.say("ada", "a-3", "Write a short poem about my work.")
    assert "Go" not in poem.split() and "Remembered" not in poem


async def test_with_memory_off_nothing_is_kept_or_recalled() -> None:
    threads = Threads(provider())
    await threads.say("ada", "a-1", ADA, memory=False)
    assert threads.keys("ada") == set()
    await threads.say("ada", "a-2", ADA)
    poem = await threads.say("ada", "a-3", "Write a short poem about my work.", memory=False)
    assert "Rust" not in poem and "Remembered" not in poem
    # What the same thread's user said is the conversation, not a memory.
    hello = await threads.say("ada", "a-2", "Hello!")
    assert "Ada" in hello and "Remembered" not in hello


async def test_a_graph_without_a_store_answers_as_before() -> None:
    graph = build_manager_graph(provider=provider(), checkpointer=InMemorySaver())
    config: Any = {"configurable": {"thread_id": "t"}}
    values = await graph.ainvoke({"messages": [HumanMessage(ADA)]}, config)
    assert values["memories"] == [] and "Ada" in values["messages"][-1].text


async def test_deleting_one_fact_keeps_the_others_told_in_the_same_sentence() -> None:
    threads = Threads(provider())
    await threads.say("ada", "a-1", ADA)
    await OwnedStore(threads.store, "ada").adelete(("memories",), "work")
    poem = await threads.say("ada", "a-2", "Write a short poem about my work.")
    assert "Rust" not in poem and poem.endswith("Remembered: your name is Ada")


async def test_a_failed_extraction_remembers_nothing_and_the_answer_still_comes() -> None:
    models = provider(simulated=False)
    router: Any = models.chat_model("router")
    router.fault_script = ["server_error"]
    threads = Threads(models)
    reply = await threads.say("ada", "a-1", ADA)
    assert "Ada" in reply and router.fault_script == []
    assert threads.keys("ada") == set()
