"""Long-term memory of the user, across threads: `recall` and `remember`.

What a user states about themselves ("I'm Ada", "I work in Rust") is kept in LangGraph's
store under `(<owner>, "memories")`, one item per fact, keyed by its kind ("name",
"work", "likes:short-answers"), so a newer statement of the same thing replaces the
older one. `recall` reads the owner's memories into the state for the answering prompts;
`remember` stores the facts of the user's latest message. Both do nothing for a run with
memory off, or a graph compiled without a store.

The owner is the run's: ALMA's protocol runs name it in their metadata (`owner`), its
LangGraph API runs in their configurable (`user_id`, as LangGraph's server does); a run
with neither (LangGraph Studio, `langgraph dev` without auth) belongs to `local`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any, Literal

from langchain_core.messages import AnyMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.runtime import Runtime
from langgraph.store.base import BaseStore
from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from memory.namespaces import owned_namespace
from nodes.calls import call_model
from nodes.facts import Fact, extract_facts, is_statement, split_sentences
from nodes.models import ModelProvider
from nodes.prompts import MEMORY_SECTION, MEMORY_SYSTEM
from nodes.router import latest_request
from nodes.run_context import RunContext

logger = logging.getLogger(__name__)

MEMORY_NAMESPACE = "memories"
"""The namespace an owner sees their memories under through the store API."""
LOCAL_OWNER = "local"
"""Whose memories a run with no owner (LangGraph Studio, `langgraph dev`) reads and writes."""
MOST_RECALLED = 50
"""The most memories handed to a prompt: the newest are kept."""

RememberedKind = Literal["name", "likes", "favourite", "studies", "work", "learning", "visiting"]
# One item per kind for what a person has one of; the others are keyed by what they name.
_SINGLE: frozenset[str] = frozenset({"name", "studies", "work", "visiting"})


class Memory(TypedDict):
    """One remembered fact, as the prompts see it."""

    key: str
    """The store key: the fact's kind, and for kinds a user has many of, what it names."""
    said: str
    """The fact in ALMA's words: "you work in Rust"."""
    source: str
    """The user's own words that stated it."""


class WithMemories(TypedDict, total=False):
    """A node input that carries the owner's memories (absent when a subgraph runs alone)."""

    memories: list[Memory]


class StatedFact(BaseModel):
    """One fact the user states about themselves."""

    kind: RememberedKind = Field(
        description="name; likes (a liking or preference); favourite; studies; work; "
        "learning (a language or skill); visiting (a place they are going to)."
    )
    value: str = Field(description="The fact itself, briefly: 'Ada', 'Rust', 'short answers'.")
    said: str = Field(description="The fact in the second person: 'you work in Rust'.")
    topic: str = Field(default="", description="What a favourite is of ('colour'), else empty.")
    source: str = Field(description="The user's sentence that states it, word for word.")


class StatedFacts(BaseModel):
    """The facts about themselves that the user states in their message (often none)."""

    facts: list[StatedFact] = Field(default_factory=list)


def owner_of(config: RunnableConfig) -> str:
    """The owner a run's memories belong to: from its metadata, its configurable, or local.

    ALMA's protocol runs put their owner in the metadata after the caller's own keys,
    so it is tried first; LangGraph API runs carry it as `user_id`, which the server
    sets over whatever the caller sent.
    """
    metadata = config.get("metadata") or {}
    configurable = config.get("configurable") or {}
    for found in (
        metadata.get("owner"),
        configurable.get("user_id"),
        configurable.get("langgraph_auth_user_id"),
    ):
        if isinstance(found, str) and found:
            return found
    return LOCAL_OWNER


def memory_namespace(owner: str) -> tuple[str, ...]:
    """Where `owner`'s memories are stored.

    Where the store API's owner scoping puts them, so the owner reads these items back
    as namespace `("memories",)`.
    """
    return owned_namespace(owner, (MEMORY_NAMESPACE,))


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "-"


def memory_key(kind: str, value: str, topic: str = "") -> str:
    """The stable key of a fact: a newer fact with the same key replaces the older."""
    if kind in _SINGLE:
        return kind
    if kind == "favourite":
        return f"favourite:{_slug(topic or value)}"
    return f"{kind}:{_slug(value)}"


def memory_value(fact: Fact | StatedFact) -> dict[str, Any]:
    """What is stored for a fact (and what the store API shows)."""
    return {
        "kind": fact.kind,
        "value": fact.value,
        "said": fact.said,
        "topic": fact.topic,
        "source": fact.source,
    }


def rememberable(text: str) -> list[Fact]:
    """The facts of a message worth keeping across threads, by fixed rules.

    Only facts of a known kind are kept: a whole statement ("The weather is nice")
    says nothing lasting about the user.
    """
    return [fact for fact in extract_facts(text) if fact.kind != "statement"]


def states_something(text: str) -> bool:
    """Whether a message holds a statement at all (else it states no fact to remember)."""
    return any(is_statement(sentence) for sentence in split_sentences(text))


def with_memories(system: str, memories: Sequence[Memory]) -> str:
    """`system` with the owner's memories appended, or as it is when there are none."""
    if not memories:
        return system
    lines = "\n".join(f'- {memory["said"]} (you said: "{memory["source"]}")' for memory in memories)
    return system + MEMORY_SECTION.format(memories=lines)


def memories_of(state: WithMemories) -> list[Memory]:
    """The memories recalled for this run (none when a subgraph runs alone)."""
    return state.get("memories") or []


def _store(runtime: Runtime[RunContext]) -> BaseStore | None:
    context = runtime.context or RunContext()
    return runtime.store if context.memory else None


class RecallInput(TypedDict, total=False):
    """What the recall step reads."""

    messages: Sequence[AnyMessage]


async def recall(
    state: RecallInput, config: RunnableConfig, runtime: Runtime[RunContext]
) -> dict[str, Any]:
    """Read the owner's memories into the state, newest first; none with memory off.

    The state's memories are replaced on every run, so a run with memory off does not
    inherit what an earlier run of the thread recalled.
    """
    store = _store(runtime)
    if store is None:
        return {"memories": []}
    items = await store.asearch(memory_namespace(owner_of(config)), limit=MOST_RECALLED)
    items.sort(key=lambda item: item.updated_at, reverse=True)
    # What the user said in this very thread is in the conversation already: only
    # what comes from other threads is "remembered".
    said_here = " ".join(
        message.text for message in state.get("messages") or [] if isinstance(message, HumanMessage)
    )
    memories = [
        Memory(key=item.key, said=str(item.value["said"]), source=str(item.value["source"]))
        for item in items
        if item.value.get("said")
        and item.value.get("source")
        and str(item.value["source"]) not in said_here
    ]
    return {"memories": memories}


class RememberInput(TypedDict, total=False):
    """What the remember step reads."""

    messages: Sequence[AnyMessage]


async def _stated(provider: ModelProvider, text: str) -> list[Fact | StatedFact]:
    """The facts `text` states: by fixed rules with the simulated model, else by the model."""
    if provider.is_simulated:
        return list(rememberable(text))
    if not states_something(text):
        return []  # a request or a question: no model call needed
    reply = await call_model(
        provider,
        "router",
        node="remember",
        system=MEMORY_SYSTEM,
        conversation=[HumanMessage(text)],
        schema=StatedFacts,
    )
    assert isinstance(reply.parsed, StatedFacts)
    return list(reply.parsed.facts)


async def remember(
    state: RememberInput,
    config: RunnableConfig,
    runtime: Runtime[RunContext],
    *,
    provider: ModelProvider,
) -> dict[str, Any]:
    """Store the facts the user's latest message states, one item per key.

    Runs before the answer: the facts are the user's words, so a stopped or failed
    answer does not lose them. A failed extraction is logged and the run goes on: the
    answer does not depend on it.
    """
    store = _store(runtime)
    text = latest_request(state.get("messages") or [])
    if store is None or not text:
        return {}
    try:
        facts = await _stated(provider, text)
    except Exception:
        logger.warning("facts could not be read from the message; none remembered", exc_info=True)
        return {}
    namespace = memory_namespace(owner_of(config))
    for fact in facts:
        if fact.value.strip() and fact.said.strip():
            key = memory_key(fact.kind, fact.value, fact.topic)
            await store.aput(namespace, key, memory_value(fact), index=False)
    return {}
