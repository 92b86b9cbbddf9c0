"""LangSmith traces of runs: metadata and tags ALMA adds, and links to each trace.

Tracing is on only when the settings say so (`LANGSMITH_TRACING`); off, nothing here
makes a client, so no connection is ever attempted. On, traces leave through the
LangSmith client's background thread: an unreachable LangSmith loses traces, never a
run, and the only call made on the event loop's behalf (finding the project for trace
links) runs in a thread under a timeout.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from langchain_core.tracers.langchain import LangChainTracer
from langchain_core.tracers.schemas import Run
from langsmith import Client

from graphs.interface import route_of
from server.observability.metrics import ComponentState

logger = logging.getLogger("alma.server")

_LINK_TIMEOUT = 3.0
_LINK_RETRY_SECONDS = 60.0


class RunTracer(LangChainTracer):
    """LangChain's LangSmith tracer, adding the run's route once the graph has chosen it."""

    def _with_route(self, run: Run) -> None:
        if run.parent_run_id is not None or not isinstance(run.outputs, dict):
            return
        route = route_of(run.outputs)
        if route is not None:
            run.extra.setdefault("metadata", {})["route"] = route
            run.tags = [*(run.tags or []), f"route:{route}"]

    def _on_chain_end(self, run: Run) -> None:
        self._with_route(run)
        super()._on_chain_end(run)

    def _on_chain_error(self, run: Run) -> None:
        self._with_route(run)
        super()._on_chain_error(run)


class Tracing:
    """This process's LangSmith client, tracers for runs, and links to their traces."""

    def __init__(
        self,
        *,
        enabled: bool,
        project: str,
        api_key: str | None = None,
        endpoint: str | None = None,
        health: ComponentState | None = None,
    ) -> None:
        self.enabled = enabled
        self.project = project
        self.health = health or ComponentState()
        self._client: Client | None = None
        self._link_base: str | None = None
        self._link_retry_at = 0.0
        if enabled:
            self._client = Client(
                api_url=endpoint,
                api_key=api_key,
                timeout_ms=(2_000, 5_000),
                tracing_error_callback=self._export_failed,
            )

    def _export_failed(self, error: Exception) -> None:
        self.health.failed(f"traces not delivered: {error}")

    def tracer(self, *, tags: list[str], metadata: dict[str, Any]) -> RunTracer | None:
        """A tracer for one run, or `None` with tracing off."""
        if self._client is None:
            return None
        return RunTracer(
            project_name=self.project, client=self._client, tags=tags, metadata=metadata
        )

    async def run_url(self, run_id: str) -> str | None:
        """The LangSmith page of a run's trace, when tracing is on and LangSmith answers."""
        if self._client is None:
            return None
        if self._link_base is None and time.monotonic() >= self._link_retry_at:
            started = time.perf_counter()
            try:
                self._link_base = await asyncio.wait_for(
                    asyncio.to_thread(self._find_project), _LINK_TIMEOUT
                )
                self.health.ok(time.perf_counter() - started)
            except Exception as exc:  # any failure only costs the link
                self._link_retry_at = time.monotonic() + _LINK_RETRY_SECONDS
                self.health.failed(f"project lookup failed: {type(exc).__name__}: {exc}")
                logger.warning("no LangSmith trace links for now: %s", exc)
        if self._link_base is None:
            return None
        return f"{self._link_base}/r/{run_id}?poll=true"

    def _find_project(self) -> str:
        assert self._client is not None
        client = self._client
        # The run page is the project page plus the run; both ids are looked up once.
        project = client.read_project(project_name=self.project)
        return f"{client._host_url}/o/{project.tenant_id}/projects/p/{project.id}"

    async def aclose(self) -> None:
        """Send what is still buffered, for a few seconds at most."""
        if self._client is None:
            return
        try:
            await asyncio.wait_for(asyncio.to_thread(self._client.flush), 5.0)
        except Exception as exc:
            logger.warning("traces still buffered at shutdown were dropped: %s", exc)
