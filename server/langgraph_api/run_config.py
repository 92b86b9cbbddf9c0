"""A LangGraph API run's configuration, keyed as LangGraph's server keys it.

LangGraph's server hands its graph a run configuration whose metadata says which
server ran it (`run_attempt`, `langgraph_version`, `langgraph_api_version`, …) and
whose configurable names the caller (`user_id`, `langgraph_auth_user_id`) and the
request (`langgraph_request_id`). Both reach every checkpoint's metadata, and the
metadata reaches every streamed event's: clients filter on these keys, so an API run
of ALMA carries the same ones. ALMA's own names for two of them (`owner`,
`alma_version`) give way to LangGraph's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog
from langchain_core.runnables import RunnableConfig
from langgraph.version import __version__ as LANGGRAPH_VERSION
from starlette.requests import Request

from server.version import VERSION

ALMA_ONLY = frozenset({"owner", "alma_version"})
"""ALMA's run metadata that LangGraph's server carries as `user_id` (in configurable)
and `langgraph_api_version`: an API run has those instead."""

HOST = "self-hosted"
"""Where this server runs, in LangGraph's words: ALMA is always run by its owner."""
PLAN = "developer"
"""LangGraph's plan without its licence: what its own server says when unlicensed."""


@dataclass(frozen=True)
class RunOrigin:
    """The HTTP request a run was created by: its id and the API's base URL."""

    request_id: str | None = None
    api_url: str | None = None

    @classmethod
    def of(cls, request: Request) -> RunOrigin:
        """The origin of a run `request` creates.

        The id is the one the request's log lines carry (the caller's `X-Request-ID`,
        or the one ALMA gave it).
        """
        request_id = structlog.contextvars.get_contextvars().get("request_id")
        return cls(
            request_id=str(request_id) if request_id is not None else None,
            api_url=str(request.base_url).rstrip("/"),
        )


def langgraph_config(config: RunnableConfig, owner: str, origin: RunOrigin) -> RunnableConfig:
    """`config` with LangGraph's server keys in its metadata and configurable."""
    metadata: dict[str, Any] = {
        key: value for key, value in (config.get("metadata") or {}).items() if key not in ALMA_ONLY
    }
    # ALMA does not retry a run: every run is its first attempt.
    metadata |= {"run_attempt": 1, "langgraph_version": LANGGRAPH_VERSION,
                 "langgraph_api_version": VERSION, "langgraph_plan": PLAN,
                 "langgraph_host": HOST, "langgraph_api_url": origin.api_url}  # fmt: skip
    configurable = {**(config.get("configurable") or {}), "user_id": owner,
                    "langgraph_auth_user_id": owner,
                    "langgraph_request_id": origin.request_id}  # fmt: skip
    return {**config, "metadata": metadata, "configurable": configurable}
