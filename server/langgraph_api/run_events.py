"""A LangGraph API run's events, followed from the thread's log and rendered as the API does.

An API run logs the stream modes it asked for (channel `api`) and its root end
(`lifecycle`). These functions follow them — replayed from the log for an ended run,
live through the broker for a running one — and frame them as LangGraph's Server-Sent
Events (`event: <mode>[|<namespace>]`, the thread's `seq` as the id, an `error` event
for a failed run), or wait for the run's final values.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson

from nodes.errors import ErrorCode
from server.agent_protocol.messages import SubscribeParams
from server.engine.broker import SlowConsumerError
from server.engine.events import data_json, ends_run, is_terminal, run_end, run_started
from server.langgraph_api.thread_stream import thread_events
from server.services import Services
from server.stores.run_records import ACTIVE, RunRecord
from server.web.sse import frame


async def run_events(
    services: Services, record: RunRecord, since: int | None
) -> AsyncIterator[dict[str, Any]]:
    """The run's logged events (API events and its root end) after `since`, live too.

    With `since` None a running run is followed from now on, and a finished one yields
    nothing, as LangGraph's server does for a join without `Last-Event-ID`.
    """
    thread_id, run_id = record.thread_id, record.run_id
    if record.status not in ACTIVE:
        if since is None:
            return
        events = services.log.read(thread_id, max(since, record.first_seq - 1), limit=100_000)
        for event in await events:
            yield event
            if is_terminal(event):
                return
        return
    after = since if since is None else max(since, record.first_seq - 1)
    params = SubscribeParams(channels=["api", "lifecycle"], namespaces=[[]], depth=0, since=after)
    subscription = await services.broker.subscribe(thread_id, params)
    try:
        fresh = await services.run_records.get(thread_id, run_id)
        if fresh is None or fresh.status not in ACTIVE:
            # It ended between reading its record and subscribing: the log has it all.
            start = after if after is not None else fresh.first_seq - 1 if fresh else None
            if start is not None:
                for event in await services.log.read(thread_id, start, limit=100_000):
                    yield event
                    if ends_run(event, run_id):
                        return
            return
        cursor = after
        try:
            async for event in subscription.events():
                cursor = event["seq"]
                yield event
                if ends_run(event, run_id):
                    return
        except SlowConsumerError as exc:
            # Too slow for the subscription's queue: the rest is in the log, read from
            # where this client was, as a thread's join stream does.
            services.broker.unsubscribe(subscription)
            resume = exc.last_seq if cursor is None else cursor
            async for event in thread_events(services, thread_id, resume):
                yield event
                if ends_run(event, run_id):
                    return
    finally:
        services.broker.unsubscribe(subscription)


def stream_start(record: RunRecord) -> int | None:
    """Where a just-started run's stream begins: before its first event, once it has one.

    A run still waiting for its thread has none yet: it is followed from now on, and its
    frames begin at its own `running`.
    """
    return record.first_seq - 1 if record.first_seq else None


def _wanted(name: str, modes: frozenset[str] | None) -> bool:
    if modes is None:
        return True
    mode = name.split("|", 1)[0]
    if mode.startswith("messages/"):
        return "messages" in modes
    return mode in modes or (mode == "messages" and "messages-tuple" in modes)


async def own_events(
    services: Services, record: RunRecord, since: int | None
) -> AsyncIterator[dict[str, Any]]:
    """The run's own API events after `since`, then its root end, live too.

    Events of a run it waited behind come before its own start and are left out.
    """
    run_id = record.run_id
    inside = since is not None and record.first_seq > 0 and since >= record.first_seq
    async for event in run_events(services, record, since):
        if event["method"] == "lifecycle":
            end = run_end(event)
            if run_started(event) == run_id:
                inside = True
            elif end is not None and end.run_id == run_id:
                yield event
                return
        elif inside and event["method"] == "api":
            yield event


async def sse_frames(
    services: Services, record: RunRecord, since: int | None, modes: frozenset[str] | None
) -> AsyncIterator[bytes]:
    """The run's SSE frames after `since`, in `modes` (None: all it logged), to its end."""
    async for event in own_events(services, record, since):
        end = run_end(event)
        if end is not None:
            if end.errored:
                error = {"error": end.code or ErrorCode.INTERNAL, "message": end.error}
                yield frame("error", orjson.dumps(error), str(event["seq"]))
            return
        name = event["params"]["event"]
        if _wanted(name, modes):
            yield frame(name, data_json(event), str(event["seq"]))


def seq_of_event_id(value: str | None) -> int | None:
    """The `seq` a client's `Last-Event-ID` names (0, the run's start, if not ALMA's)."""
    if value is None:
        return None
    try:
        return max(int(value.strip()), 0)
    except ValueError:
        return 0  # an id from elsewhere: replay the run from its start


async def outcome(services: Services, record: RunRecord) -> Any:
    """Wait for the run to end; the final values, or `{"__error__": ...}`."""
    values: Any = None
    since = record.first_seq - 1 if record.first_seq else None
    async for event in run_events(services, record, since):
        params = event["params"]
        if event["method"] == "api" and params["event"] == "values":
            values = params["data"]
        elif (end := run_end(event)) is not None and end.run_id == record.run_id:
            if end.errored:
                return {"__error__": {"error": end.code, "message": end.error}}
    if values is None:
        state = await services.graph.aget_state({"configurable": {"thread_id": record.thread_id}})
        values = dict(state.values)
    return values


def join_modes(values: list[str] | None) -> frozenset[str] | None:
    """The stream modes a join asks for (None: every mode the run logged)."""
    # The SDK repeats the parameter for a list; a JSON array in one value works too.
    modes: set[str] = set()
    for value in values or ():
        if value.startswith("["):
            with contextlib.suppress(orjson.JSONDecodeError):
                modes.update(str(mode) for mode in orjson.loads(value))
                continue
        if value:
            modes.add(value)
    return frozenset(modes) or None
