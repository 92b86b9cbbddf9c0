"""`langgraph dev` (LangGraph's own server) serving this repo's langgraph.json, for a test."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from loadtests.processes import langgraph_dev as start_langgraph_dev


@contextmanager
def langgraph_dev(
    redis_url: str, *, prefix: str, env: Mapping[str, str] | None = None
) -> Iterator[str]:
    """Start `langgraph dev` on the manager graph with ALMA's Redis checkpointer; its URL.

    Several runs may execute at once (on different threads), as on ALMA.
    """
    environment = {
        "ALMA_SIMULATED_TTFT": "0",
        "ALMA_SIMULATED_TOKENS_PER_SECOND": "0",
        "ALMA_REDIS_PREFIX": prefix,
        **(env or {}),
    }
    with start_langgraph_dev(redis_url, env=environment, jobs=8) as server:
        yield server.url
