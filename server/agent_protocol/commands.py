"""Protocol commands, executed the same way over WebSocket and over plain HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from pydantic import BaseModel, ValidationError
from redis.exceptions import RedisError

from server.agent_protocol.messages import (
    Command,
    InputRespondParams,
    ListCheckpointsParams,
    ProtocolError,
    ReconnectParams,
    RunCancelParams,
    RunStartParams,
    StateGetParams,
    SubscribeParams,
    UnsubscribeParams,
    failure,
    success,
)
from server.agent_protocol.streaming import ProtocolStream
from server.engine import NO_ACTIVE_RUN, StartRequest
from server.engine.broker import SlowConsumerError, Subscription
from server.engine.events import Logged, to_wire
from server.guard.auth import Principal
from server.guard.limits import Verdict
from server.guard.refusals import Refusal, Refused
from server.guard.validation import INPUT_SHAPE, check_thread_id, describe_invalid
from server.langgraph_api.assistants import MANAGER_ASSISTANT_ID
from server.services import Services

Send = Callable[[bytes], Awaitable[None]]
"""Sends one encoded JSON message to the client."""
OnSlow = Callable[[SlowConsumerError], Coroutine[Any, Any, None]]


@dataclass(eq=False)
class Connection:
    """A WebSocket's subscriptions, and the runs it started that end with it."""

    send: Send
    on_slow: OnSlow
    subscriptions: dict[str, tuple[Subscription, asyncio.Task[None]]] = field(default_factory=dict)
    cancel_on_close: set[str] = field(default_factory=set)

    closing: asyncio.Task[None] | None = None
    """Closing the WebSocket as too slow, once that has begun."""

    async def pump(self, events: AsyncIterator[Logged]) -> None:
        """Send a subscription's `events` as they come.

        Each goes out as the bytes it was logged as: no event is encoded again here.
        """
        try:
            async for event in events:
                await self.send(event.raw)
        except SlowConsumerError as exc:
            self.too_slow(exc)

    def too_slow(self, exc: SlowConsumerError) -> None:
        """Close the connection as too slow (once); the client resumes from the log."""
        if self.closing is None:
            self.closing = asyncio.create_task(self.on_slow(exc))


_Params = TypeVar("_Params", bound=BaseModel)


def _params(model: type[_Params], raw: dict[str, Any]) -> _Params:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ProtocolError("invalid_argument", describe_invalid(exc)) from exc


logger = logging.getLogger("alma.server")


async def execute(
    services: Services,
    thread_id: str,
    command: Command,
    connection: Connection | None,
    principal: Principal,
    verdicts: list[Verdict] | None = None,
) -> dict[str, Any]:
    """Run one command for `principal` and return the protocol's success or error answer.

    Rate-limit verdicts met on the way are appended to `verdicts` (for HTTP headers).
    """
    try:
        check_thread_id(thread_id)
        # A run start checks the owner as it claims the thread (`RunStarter`).
        starting = command.method == "run.start"
        owner = None if starting else await services.owners.owner_of(thread_id)
        result = await _dispatch(
            services, thread_id, command, connection, principal, verdicts, owner=owner
        )
    except ProtocolError as exc:
        return failure(command.id, exc.code, exc.message, **exc.details)
    except Refused as exc:
        return failure(command.id, exc.protocol_code, exc.message, **exc.details)
    return success(command.id, result)


async def owned_events(
    services: Services, subscription: Subscription, owner: str, *, owned: bool
) -> AsyncIterator[Logged]:
    """A subscription's events, for `owner`.

    Made on a thread nobody owned (`owned` false), it lets its first event through only
    if the thread is `owner`'s by then — their own run claimed it — and otherwise ends:
    a subscription never shows one owner what another's run streams.
    """
    async for event in subscription.events():
        if not owned:
            if await services.owners.owner_of(subscription.thread_id) != owner:
                return
            owned = True
        yield event


async def _dispatch(
    services: Services,
    thread_id: str,
    command: Command,
    connection: Connection | None,
    principal: Principal,
    verdicts: list[Verdict] | None,
    *,
    owner: str | None,
) -> dict[str, Any]:
    """Carry out `command` on a thread held by `owner` (None: nobody yet).

    On another owner's thread every command answers as on a thread that does not exist
    (empty state, no such run, a subscription that sees nothing), so its answers never
    tell whether an id is taken; only a run start is refused, as it must be.
    """
    method = command.method
    foreign = owner is not None and owner != principal.owner
    if method == "run.start":
        params = _params(RunStartParams, command.params)
        if params.input is None:
            raise Refused(Refusal.INVALID, INPUT_SHAPE)
        fork = params.fork_point()
        if fork is not None:
            await _check_checkpoint(services, thread_id, fork["checkpoint_id"], foreign=foreign)
        request = StartRequest(
            owner=principal.owner, limit_key=principal.limit_key, thread_id=thread_id,
            assistant_id=params.assistant_id, input=params.input, stream=ProtocolStream(),
            config=params.config, checkpoint=fork,
            metadata=params.metadata, context=params.context,
            multitask_strategy=params.multitask_strategy,
        )  # fmt: skip
        run = await services.starter.start(request, verdicts)
        if connection is not None and params.on_disconnect == "cancel":
            connection.cancel_on_close.add(run.run_id)
        return {"run_id": run.run_id}
    if method == "input.respond":
        respond = _params(InputRespondParams, command.params)
        request = await _resume_request(services, thread_id, respond, principal, foreign=foreign)
        await services.starter.start(request, verdicts)
        return {}
    if method == "run.cancel":
        cancel = _params(RunCancelParams, command.params)
        if foreign:
            raise Refused(Refusal.NO_SUCH_RUN, NO_ACTIVE_RUN)
        await services.runs.cancel(thread_id, cancel.run_id)
        return {}
    if method == "state.get":
        params_get = _params(StateGetParams, command.params)
        return {"values": {}} if foreign else await _state(services, thread_id, params_get)
    if method == "state.listCheckpoints":
        listing = _params(ListCheckpointsParams, command.params)
        return {"checkpoints": []} if foreign else await _checkpoints(services, thread_id, listing)
    if method.startswith("subscription."):
        if connection is None:
            raise ProtocolError(
                "not_supported",
                "subscriptions need a WebSocket; over HTTP, POST /threads/{id}/stream/events",
            )
        mine = owner == principal.owner
        return await _subscription(services, thread_id, command, connection, principal, owned=mine)
    raise ProtocolError("unknown_command", "unknown command method")


async def _resume_request(
    services: Services,
    thread_id: str,
    params: InputRespondParams,
    principal: Principal,
    *,
    foreign: bool,
) -> StartRequest:
    """The run that resumes `thread_id` with `params`' answers, once they are known to fit.

    Only interrupts the thread is waiting on may be answered: another owner's thread
    waits on none, as far as the caller can tell.
    """
    answers = params.answers()
    pending = set() if foreign else await _pending_interrupts(services, thread_id)
    unknown = [interrupt_id for interrupt_id in answers if interrupt_id not in pending]
    if unknown:
        raise ProtocolError(
            "no_such_interrupt",
            f"the thread is not waiting on interrupt {unknown[0]} (unknown, or already answered)",
        )
    resume: dict[str, Any] = {"resume": answers}
    if params.update is not None:
        resume["update"] = params.update
    if params.goto is not None:
        resume["goto"] = params.goto
    return StartRequest(
        owner=principal.owner, limit_key=principal.limit_key, thread_id=thread_id,
        assistant_id=MANAGER_ASSISTANT_ID, input=None, command=resume, stream=ProtocolStream(),
        config=params.config, metadata=params.metadata, create_thread=False,
    )  # fmt: skip


async def _check_checkpoint(
    services: Services, thread_id: str, checkpoint_id: str, *, foreign: bool
) -> None:
    """Refuse a fork from a checkpoint the thread does not have.

    LangGraph would start such a run from an empty state, silently losing the
    conversation the client meant to branch from. Another owner's thread has none.
    """
    checkpointer = services.graph.checkpointer
    found = None
    if not foreign and isinstance(checkpointer, BaseCheckpointSaver):
        found = await checkpointer.aget_tuple(_config(thread_id, checkpoint_id))
    if found is None:
        raise ProtocolError(
            "no_such_checkpoint", f"thread {thread_id} has no checkpoint {checkpoint_id}"
        )


async def _pending_interrupts(services: Services, thread_id: str) -> set[str]:
    """Ids of the interrupts the thread's latest checkpoint waits on (subgraphs' too)."""
    snapshot = await services.graph.aget_state(_config(thread_id))
    return {pending.id for pending in snapshot.interrupts}


async def _subscription(
    services: Services,
    thread_id: str,
    command: Command,
    connection: Connection,
    principal: Principal,
    *,
    owned: bool,
) -> dict[str, Any]:
    broker = services.broker
    if command.method == "subscription.subscribe":
        params = _params(SubscribeParams, command.params)
        most = services.settings.max_subscriptions
        if len(connection.subscriptions) >= most:
            # Each subscription is a queue and a copy of every event it matches: one
            # connection must not make the server hold and send thousands.
            raise Refused(
                Refusal.LIMITED,
                f"this connection already holds {most} subscriptions, the most allowed "
                "(ALMA_MAX_SUBSCRIPTIONS); unsubscribe one first",
            )
        subscription = await broker.subscribe(thread_id, params)
        events = owned_events(services, subscription, principal.owner, owned=owned)
        _attach(services, connection, subscription, events)
        return {"subscription_id": subscription.id}
    if command.method == "subscription.unsubscribe":
        unsubscribe = _params(UnsubscribeParams, command.params)
        found = connection.subscriptions.pop(unsubscribe.subscription_id, None)
        if found is None:
            raise ProtocolError(
                "no_such_subscription", "no subscription with that id on this connection"
            )
        close_subscription(services, *found)
        return {}
    if command.method == "subscription.reconnect":
        reconnect = _params(ReconnectParams, command.params)
        since = _seq(reconnect.last_event_id)
        missed = 0
        for key, (old, task) in list(connection.subscriptions.items()):
            close_subscription(services, old, task)
            params = old.params.model_copy(update={"since": since})
            fresh = await broker.subscribe(thread_id, params)
            if owned:  # another owner's log is not counted to the caller
                missed += fresh.queue.qsize()
            del connection.subscriptions[key]
            events = owned_events(services, fresh, principal.owner, owned=owned)
            _attach(services, connection, fresh, events)
        return {"restored": True, "missed_events": missed}
    raise ProtocolError("unknown_command", "unknown command method")


def _attach(
    services: Services,
    connection: Connection,
    subscription: Subscription,
    events: AsyncIterator[Logged],
) -> None:
    """Pump a subscription's `events` into the connection until they end or overflow."""
    task = asyncio.create_task(connection.pump(events))
    connection.subscriptions[subscription.id] = (subscription, task)

    def overflowed(exc: SlowConsumerError) -> None:
        # The pump may be stuck in a send to a client that stopped reading: stop it
        # and close the connection now rather than when the client reads again.
        found = connection.subscriptions.pop(subscription.id, None)
        if found is not None:
            close_subscription(services, *found)
        connection.too_slow(exc)

    subscription.on_overflow = overflowed


def _seq(event_id: str | None) -> int:
    try:
        return max(int(event_id or 0), 0)
    except ValueError as exc:
        raise ProtocolError(
            "invalid_argument", "last_event_id must be an event's sequence number"
        ) from exc


def close_subscription(
    services: Services, subscription: Subscription, task: asyncio.Task[None]
) -> None:
    """End a subscription and the task sending its events."""
    services.broker.unsubscribe(subscription)
    task.cancel()


async def close_connection(services: Services, connection: Connection) -> None:
    """Tear a connection down: its subscriptions end; runs it owned are cancelled."""
    for subscription, task in connection.subscriptions.values():
        close_subscription(services, subscription, task)
    tasks = [task for _, task in connection.subscriptions.values()]
    connection.subscriptions.clear()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    if connection.closing is not None and not connection.closing.done():
        connection.closing.cancel()
    for run_id in connection.cancel_on_close:
        run = services.runs.runs.get(run_id)
        if run is not None:
            with contextlib.suppress(Refused, RedisError):
                await services.runs.cancel(run.thread_id, run_id)


def _config(thread_id: str, checkpoint_id: str | None = None) -> RunnableConfig:
    configurable: dict[str, Any] = {"thread_id": thread_id}
    if checkpoint_id:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


async def _state(services: Services, thread_id: str, params: StateGetParams) -> dict[str, Any]:
    if params.namespace:
        raise ProtocolError("no_such_namespace", "state is kept for the root namespace only")
    snapshot = await services.graph.aget_state(_config(thread_id))
    values = dict(snapshot.values)
    if params.keys is not None:
        values = {k: v for k, v in values.items() if k in params.keys}
    result: dict[str, Any] = {"values": to_wire(values)}
    checkpoint_id = snapshot.config.get("configurable", {}).get("checkpoint_id")
    if checkpoint_id:
        result["checkpoint"] = {"id": checkpoint_id}
    return result


async def _checkpoints(
    services: Services, thread_id: str, params: ListCheckpointsParams
) -> dict[str, Any]:
    before = _config(thread_id, params.before) if params.before else None
    summaries = []
    async for snapshot in services.graph.aget_state_history(
        _config(thread_id), before=before, limit=params.limit
    ):
        metadata = snapshot.metadata or {}
        summaries.append(
            {
                "id": snapshot.config["configurable"]["checkpoint_id"],
                "timestamp": snapshot.created_at,
                "step": metadata.get("step", -1),
                "metadata": to_wire(metadata),
            }
        )
    return {"checkpoints": summaries}
