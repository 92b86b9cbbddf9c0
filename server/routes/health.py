"""Liveness and readiness."""

from __future__ import annotations

import asyncio
import time
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from redis.exceptions import RedisError

from server.deps import ServicesDep

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


class Readiness(BaseModel):
    """Whether the process can serve runs, and why not."""

    ready: bool
    components: dict[str, Component]


@router.get("/health")
async def read_health(services: ServicesDep) -> Health:
    """Liveness: the process answers."""
    return Health(instance=services.instance, uptime_seconds=time.time() - services.started)


class Stats(BaseModel):
    """What this process holds right now: nothing should outlive its run or connection."""

    instance: str
    active_runs: int
    subscriptions: int
    topics: int
    websockets: int
    tasks: int
    """asyncio tasks alive in the process."""


@router.get("/stats")
async def read_stats(services: ServicesDep) -> Stats:
    """Live runs, subscriptions, connections and tasks of this process."""
    return Stats(
        instance=services.instance,
        active_runs=len(services.runs.runs),
        subscriptions=services.broker.subscription_count,
        topics=len(services.broker.topics),
        websockets=len(services.connections),
        tasks=len(asyncio.all_tasks()),
    )


@router.get("/ready", response_model=Readiness, responses={503: {"model": Readiness}})
async def read_ready(services: ServicesDep) -> JSONResponse:
    """Readiness: Redis reachable (or process memory allowed), a model, a compiled graph."""
    components: dict[str, Component] = {}
    memory = services.memory
    if memory.redis is None:
        components["redis"] = Component(status="degraded", detail=memory.description)
    else:
        started = time.perf_counter()
        try:
            await memory.redis.ping()
            components["redis"] = Component(
                status="ok",
                detail=memory.description,
                latency_ms=round((time.perf_counter() - started) * 1000, 2),
            )
        except (RedisError, OSError) as exc:
            components["redis"] = Component(status="down", detail=f"unreachable: {exc}")
    provider = services.provider
    components["model"] = Component(
        status="degraded" if provider.is_simulated else "ok", detail=provider.description
    )
    components["graph"] = Component(status="ok", detail=f"compiled: {services.graph.name}")
    if services.runs.draining:
        components["server"] = Component(status="down", detail="shutting down")
    ready = all(c.status != "down" for c in components.values())
    body = Readiness(ready=ready, components=components)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)
