"""Nothing on a run's path hops to a worker thread.

FastAPI runs a plain-function dependency, and LangGraph a plain-function node or edge of
an async graph, in a worker thread: a hand-off, a wake-up and a wait on every request or
step. Every dependency, endpoint, node and edge is a coroutine.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, APIWebSocketRoute
from langgraph._internal._runnable import RunnableCallable

from graphs.manager import build_manager_graph
from nodes.models import ModelProvider
from server.app import create_app
from server.settings import Settings


def calls(dependant: Dependant) -> Iterator[Any]:
    for sub in dependant.dependencies:
        yield from calls(sub)
        if sub.call is not None:
            yield sub.call


def api_routes(routes: list[Any]) -> Iterator[APIRoute | APIWebSocketRoute]:
    for route in routes:
        if isinstance(route, APIRoute | APIWebSocketRoute):
            yield route
        included = getattr(route, "original_router", None)  # an included router
        if included is not None:
            yield from api_routes(included.routes)


def test_every_dependency_and_endpoint_is_a_coroutine() -> None:
    app = create_app(Settings(_env_file=None, redis_url=""))
    routes = list(api_routes(app.routes))
    assert len(routes) > 20
    plain = {
        f"{route.path}: {getattr(call, '__name__', call)}"
        for route in routes
        for call in [route.endpoint, *calls(route.dependant)]
        if not inspect.iscoroutinefunction(call)
    }
    assert not plain


def callables(runnable: Any) -> Iterator[RunnableCallable]:
    if isinstance(runnable, RunnableCallable):
        yield runnable
    for step in getattr(runnable, "steps", ()):
        yield from callables(step)


def hops(part: RunnableCallable) -> bool:
    # LangGraph gives a plain function an async side that calls it in an executor.
    afunc = part.afunc
    return afunc is None or getattr(getattr(afunc, "func", None), "__name__", "") == (
        "run_in_executor"
    )


def test_every_node_and_edge_of_the_graphs_is_a_coroutine() -> None:
    graph = build_manager_graph(provider=ModelProvider.simulated())
    builders = [graph.builder]
    for spec in graph.builder.nodes.values():
        inner = getattr(spec.runnable, "builder", None)
        if inner is not None:
            builders.append(inner)
    plain = set()
    for builder in builders:
        runnables = [spec.runnable for spec in builder.nodes.values()]
        runnables += [b.path for by in builder.branches.values() for b in by.values()]
        for runnable in runnables:
            for part in callables(runnable):
                if hops(part):
                    plain.add(part.name)
    assert len(builders) == 3
    assert not plain
