"""Liveness and readiness."""

from __future__ import annotations

import asyncio
import time
from typing import Literal

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from langgraph.version import __version__ as LANGGRAPH_VERSION
from pydantic import BaseModel, Field
from redis.exceptions import RedisError

from server.observability import metrics
from server.observability.metrics import ComponentState
from server.version import VERSION
from server.web.deps import ServicesDep, operator_endpoint

router = APIRouter(tags=["health"])


class Health(BaseModel):
    """The process is up."""

    status: Literal["ok"] = "ok"
    instance: str
    uptime_seconds: float


class Component(BaseModel):
    """One dependency's state."""

    status: Literal["ok", "degraded", "down"]
    detail: str
    latency_ms: float | None = None
    """The latest check or call, in milliseconds."""
    last_error: str | None = None
    last_error_at: float | None = None
    """When `last_error` happened (Unix seconds)."""


def _component(
    status: Literal["ok", "degraded", "down"],
    detail: str,
    state: ComponentState,
    latency_ms: float | None = None,
) -> Component:
    return Component(
        status=status,
        detail=detail,
        latency_ms=state.latency_ms if latency_ms is None else latency_ms,
        last_error=state.last_error,
        last_error_at=state.last_error_at,
    )


class Readiness(BaseModel):
    """Whether the process can serve runs, and why not."""

    ready: bool
    components: dict[str, Component]


@router.get("/health")
async def read_health(services: ServicesDep) -> Health:
    """Liveness: the process answers."""
    return Health(instance=services.instance, uptime_seconds=time.time() - services.started)


class LiveFigures(BaseModel):
    """The service's recent figures, every worker's together."""

    runs_active: float
    runs_finished: float
    """Runs ended within the window."""
    ttft_p95_ms: float | None
    """95th percentile time to first token within the window; `None` before any run."""
    window_seconds: float | None


class Stats(BaseModel):
    """What this process holds right now: nothing should outlive its run or connection."""

    instance: str
    active_runs: int
    subscriptions: int
    topics: int
    websockets: int
    tasks: int
    """asyncio tasks alive in the process."""
    live: LiveFigures
    """The whole service's recent figures (from the metrics)."""


class Limits(BaseModel):
    """What each caller may use (per key, or per address without keys)."""

    runs: int
    tokens: int
    window_seconds: int
    connections: int


class ServerFlags(BaseModel):
    """What LangGraph's server API features this server has (LangGraph's `/info` flags)."""

    assistants: bool = True
    crons: bool = True
    langsmith: bool
    """Runs are traced to LangSmith."""
    langsmith_tracing_replicas: bool = False
    langsmith_tracing_session_on_runs: bool = False


class ServerHost(BaseModel):
    """Where the server runs (LangGraph's `/info` host; ALMA is always self-hosted)."""

    kind: str = "self-hosted"
    project_id: str | None = None
    host_revision_id: str | None = None
    revision_id: str | None = None
    tenant_id: str | None = None


class ServiceInfo(BaseModel):
    """What a client needs to know before it talks to the service.

    A superset of LangGraph's server `/info`, so that LangGraph Studio and
    `langgraph-sdk` read it too.
    """

    version: str
    """ALMA's version."""
    langgraph_py_version: str
    """The version of LangGraph that runs the graph."""
    flags: ServerFlags
    host: ServerHost = Field(default_factory=ServerHost)
    auth_required: bool
    """Clients must send an API key (header, or WebSocket subprotocol `alma-key.<key>`)."""
    simulated_model: bool
    """Answers come from the built-in simulated model, not a real one."""
    model: str
    limits: Limits
    max_message_chars: int


@router.get("/info")
async def read_info(services: ServicesDep) -> ServiceInfo:
    """Version, whether a key is needed, which model answers, and the limits."""
    settings = services.settings
    return ServiceInfo(
        version=VERSION,
        langgraph_py_version=LANGGRAPH_VERSION,
        flags=ServerFlags(langsmith=services.observability.tracing.enabled),
        auth_required=services.keys.required,
        simulated_model=services.provider.is_simulated,
        model=services.provider.description,
        limits=Limits(
            runs=settings.limit_runs,
            tokens=settings.limit_tokens,
            window_seconds=settings.limit_window_seconds,
            connections=settings.limit_connections,
        ),
        max_message_chars=settings.max_message_chars,
    )


class Ok(BaseModel):
    """LangGraph's server liveness answer."""

    ok: Literal[True] = True
    services: dict[str, str] = Field(default_factory=dict)
    """Checks of dependencies by name (none: `/ready` reports those)."""


@router.get("/ok")
async def read_ok() -> Ok:
    """Liveness, as LangGraph's server answers it."""
    return Ok()


@router.get("/stats", dependencies=[Depends(operator_endpoint("stats"))])
async def read_stats(services: ServicesDep) -> Stats:
    """Live runs, subscriptions, connections and tasks of this process."""
    return Stats(
        instance=services.instance,
        active_runs=len(services.runs.runs),
        subscriptions=services.broker.subscription_count,
        topics=len(services.broker.topics),
        websockets=len(services.connections),
        tasks=len(asyncio.all_tasks()),
        live=LiveFigures.model_validate(services.sampler.recent.now()),
    )


@router.get("/ready", response_model=Readiness, responses={503: {"model": Readiness}})
async def read_ready(services: ServicesDep) -> JSONResponse:
    """Readiness: Redis reachable (or process memory allowed), a model, a compiled graph."""
    components: dict[str, Component] = {}
    memory = services.memory
    redis_state = services.sampler.redis
    if memory.redis is None:
        components["redis"] = _component("degraded", memory.description, redis_state)
    else:
        started = time.perf_counter()
        try:
            await memory.redis.ping()
            redis_state.ok(time.perf_counter() - started)
            components["redis"] = _component("ok", memory.description, redis_state)
        except (RedisError, OSError) as exc:
            redis_state.failed(exc)
            components["redis"] = _component("down", f"unreachable: {exc}", redis_state)
    provider = services.provider
    observability = services.observability
    components["model"] = _component(
        "degraded" if provider.is_simulated else "ok", provider.description, observability.model
    )
    tracing = observability.tracing
    if tracing.enabled:
        # Traces are best effort: LangSmith trouble degrades, never stops, the service.
        failing = tracing.health.last_error_at is not None and (
            tracing.health.last_error_at >= (tracing.health.checked_at or 0)
        )
        components["langsmith"] = _component(
            "degraded" if failing else "ok", f"project {tracing.project}", tracing.health
        )
    components["graph"] = Component(status="ok", detail=f"compiled: {services.graph.name}")
    if services.runs.draining:
        components["server"] = Component(status="down", detail="shutting down")
    ready = all(c.status != "down" for c in components.values())
    body = Readiness(ready=ready, components=components)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


@router.get(
    "/metrics",
    dependencies=[Depends(operator_endpoint("metrics"))],
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format."}},
)
async def read_metrics() -> Response:
    """Prometheus metrics: runs, latency, tokens, cost, connections, resources."""
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)
