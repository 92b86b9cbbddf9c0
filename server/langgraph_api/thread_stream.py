"""A thread's join stream (`GET /threads/{id}/stream`): its runs, one after another.

LangGraph's server streams every run of a thread as it happens, for as long as the
client stays: each run's events in the modes that run asked for, framed as its own
stream frames them, and a `metadata` `{"status": "run_done"}` as each run ends. Here
they are followed from the thread's log, through the broker as every subscription is,
so a run executing on another process streams the same; the log's `seq` is each event's
id, and `Last-Event-ID` resumes right after it, whether or not the run asked for a
resumable stream.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from typing import Literal, cast, get_args

import orjson

from nodes.errors import ErrorCode
from server.agent_protocol.messages import SubscribeParams, matches
from server.engine.broker import SlowConsumerError
from server.engine.events import Logged, data_json, run_end
from server.services import Services
from server.web.sse import frame

ThreadStreamMode = Literal["run_modes", "lifecycle", "state_update"]
"""What a thread's join stream may ask for, as LangGraph's server names it."""
THREAD_STREAM_MODES: frozenset[str] = frozenset(get_args(ThreadStreamMode))
_FOLLOWED = SubscribeParams(channels=["api", "lifecycle"], namespaces=[[]], depth=0)
"""A thread's API events and root lifecycle: what LangGraph API runs log of themselves."""


class UnknownStreamMode(ValueError):
    """A join stream asked for a mode LangGraph's server does not have."""


def thread_stream_modes(values: Iterable[str]) -> frozenset[ThreadStreamMode]:
    """The modes asked for, each value one mode or several comma-separated.

    Nothing asked for is `run_modes`, as on LangGraph's server.

    Raises:
        UnknownStreamMode: for a mode that is none of `THREAD_STREAM_MODES`.
    """
    modes: set[str] = set()
    for value in values:
        modes.update(mode.strip() for mode in value.split(",") if mode.strip())
    unknown = sorted(modes - THREAD_STREAM_MODES)
    if unknown:
        raise UnknownStreamMode(f"Invalid stream mode: {', '.join(unknown)}")
    return cast(frozenset[ThreadStreamMode], frozenset(modes or {"run_modes"}))


async def thread_events(services: Services, thread_id: str, since: int) -> AsyncIterator[Logged]:
    """The thread's API events and root lifecycle after `since`, then live, until closed.

    A long way back is read from the log page by page before subscribing, so the
    broker's replay stays within a subscription's queue; a client too slow for its queue
    goes back to the log from where it was. The stream ends only when the broker closes
    its subscriptions (the process shuts down) or the client leaves.
    """
    page_size = max(services.settings.send_queue_size // 2, 1)
    cursor = since
    while True:
        while True:
            page = await services.log.read(thread_id, cursor, limit=page_size)
            for event in page:
                cursor = event["seq"]
                if matches(event, _FOLLOWED):
                    yield event
            if len(page) < page_size:
                break
        params = _FOLLOWED.model_copy(update={"since": cursor})
        subscription = await services.broker.subscribe(thread_id, params)
        try:
            async for event in subscription.events():
                cursor = event["seq"]
                yield event
            return
        except SlowConsumerError:
            continue
        finally:
            services.broker.unsubscribe(subscription)


def _wanted(event: Logged, modes: frozenset[ThreadStreamMode]) -> bool:
    # ALMA logs no thread event for a state update: `state_update` alone selects nothing.
    if "run_modes" in modes:
        return True
    return "lifecycle" in modes and event["params"]["event"] == "metadata"


async def thread_frames(
    services: Services, thread_id: str, since: int, modes: frozenset[ThreadStreamMode]
) -> AsyncGenerator[bytes, None]:
    """The SSE frames of the thread's runs after `since`, in `modes`, until closed."""
    async for event in thread_events(services, thread_id, since):
        seq = str(event["seq"])
        if event["method"] == "api":
            if _wanted(event, modes):
                yield frame(event["params"]["event"], data_json(event), seq)
            continue
        end = run_end(event)
        if end is None:
            continue  # a run's `running`: its API `metadata` event follows
        done = orjson.dumps({"status": "run_done", "run_id": end.run_id})
        chunk = frame("metadata", done, seq) if modes & {"run_modes", "lifecycle"} else b""
        if end.errored and "run_modes" in modes:
            # One write, and the id on the last frame only: a client cut off before it
            # resumes with both frames again, one that saw it with neither.
            error = {"error": end.code or ErrorCode.INTERNAL, "message": end.error}
            chunk = frame("error", orjson.dumps(error)) + chunk
        if chunk:
            yield chunk


async def thread_start(services: Services, thread_id: str, last_event_id: int | None) -> int:
    """Where a join stream starts: after `Last-Event-ID`, or at the log's end (from now on)."""
    if last_event_id is not None:
        return last_event_id
    return await services.log.last_seq(thread_id)
