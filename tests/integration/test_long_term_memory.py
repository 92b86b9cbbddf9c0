"""Memory across threads against a real `alma serve` and Redis, through LangGraph's SDK.

Owner A tells ALMA a fact in one thread; a new thread of A uses it and says so. Owner B
(another API key) never sees it, neither in answers nor through the store API. A's
deleting it through the store API stops its use, and a run with memory off keeps nothing.
"""

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from server.guard.auth import new_key
from tests.utils.redis_server import RedisServer
from tests.utils.service import Service, alma_service

pytestmark = pytest.mark.integration

ADA, ADA_ENTRY = new_key("ada")
BOB, BOB_ENTRY = new_key("bob.smith")
TOLD = "Hi, I'm Ada. I work in Rust and I prefer short answers."
ASK = "Write a short poem about my work."
MEMORIES = ["memories"]


@pytest.fixture(scope="module")
def alma(redis: RedisServer) -> Iterator[Service]:
    env = {"ALMA_API_KEYS": f"{ADA_ENTRY},{BOB_ENTRY}"}
    with alma_service(redis.url, prefix=f"ltm-{uuid.uuid4().hex[:6]}", env=env) as service:
        yield service


@pytest.fixture
async def clients(alma: Service) -> AsyncIterator[tuple[LangGraphClient, LangGraphClient]]:
    ada, bob = get_client(url=alma.url, api_key=ADA), get_client(url=alma.url, api_key=BOB)
    yield ada, bob
    await ada.aclose()
    await bob.aclose()


async def answer(client: LangGraphClient, text: str, **context: Any) -> str:
    """The answer of a run in a new thread."""
    thread = await client.threads.create()
    message: Any = {"role": "user", "content": text}
    values: Any = await client.runs.wait(
        thread["thread_id"], "manager", input={"messages": [message]}, context=context
    )
    return str(values["messages"][-1]["content"])


def noted(answer: str) -> set[str]:
    """The facts an answer's closing "Remembered:" line says it used."""
    _, found, line = answer.rpartition("\n\nRemembered: ")
    return set(line.split("; ")) if found else set()


async def remembered(client: LangGraphClient) -> dict[str, str]:
    """What the store API shows the client under `["memories"]`: key → fact."""
    found = await client.store.search_items(MEMORIES, limit=100)
    return {item["key"]: item["value"]["said"] for item in found["items"]}


async def test_a_fact_is_the_owners_across_threads_until_deleted(
    clients: tuple[LangGraphClient, LangGraphClient],
) -> None:
    ada, bob = clients
    await answer(ada, TOLD)
    assert await remembered(ada) == {
        "name": "your name is Ada",
        "work": "you work in Rust",
        "likes:short-answers": "you prefer short answers",
    }
    poem = await answer(ada, ASK)
    assert "Rust" in poem and noted(poem) == {"you work in Rust", "your name is Ada"}
    analysis = await answer(ada, "Compare two sorting algorithms for my work.")
    assert "Rust" in analysis and noted(analysis) == {"you work in Rust"}

    # Bob (another key) neither gets it in an answer nor finds it in the store.
    theirs = await answer(bob, ASK)
    assert "Rust" not in theirs and noted(theirs) == set()
    assert await remembered(bob) == {}
    assert (await bob.store.search_items([], limit=100))["items"] == []

    # Deleted through the store API, it is no longer used.
    await ada.store.delete_item(MEMORIES, "work")
    assert "work" not in await remembered(ada)
    poem = await answer(ada, ASK)
    assert "Rust" not in poem and noted(poem) == {"your name is Ada"}


async def test_a_run_with_memory_off_keeps_and_uses_nothing(
    clients: tuple[LangGraphClient, LangGraphClient],
) -> None:
    _, bob = clients
    await answer(bob, "I'm Bob. I study geology.", memory=False)
    assert await remembered(bob) == {}
    await answer(bob, "I study geology.")
    assert await remembered(bob) == {"studies": "you study geology"}
    poem = await answer(bob, "Write a poem about my field of study.", memory=False)
    assert "geology" not in poem and noted(poem) == set()
    poem = await answer(bob, "Write a poem about my field of study.")
    assert "geology" in poem and noted(poem) == {"you study geology"}
