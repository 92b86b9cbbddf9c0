"""Everything a request needs, built once at start-up and handed to the routes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from langgraph.graph.state import CompiledStateGraph

from graphs.manager import build_manager_graph
from memory.factory import Memory, open_memory
from nodes.models import ModelProvider
from nodes.run_context import RunContext
from server.engine import RunManager, RunStarter
from server.engine.broker import Broker
from server.engine.coordination import (
    Control,
    MemoryControl,
    MemoryRunLeases,
    RedisControl,
    RedisRunLeases,
    RunLeases,
)
from server.engine.cron_scheduler import CronScheduler
from server.engine.pacing import WritePacing
from server.guard.auth import KeyRing
from server.guard.limits import RateLimits
from server.observability.metrics import ComponentState, ResourceSampler, process_ended
from server.observability.observer import Observability
from server.observability.pricing import PriceTable
from server.observability.tracing import Tracing
from server.settings import Settings
from server.stores.checkpoint_metadata import stamp_thread
from server.stores.crons import Crons, open_crons
from server.stores.event_log import EventLog, MemoryEventLog, RedisEventLog
from server.stores.owners import ThreadOwners
from server.stores.run_records import MemoryRunRecords, RedisRunRecords, RunRecords
from server.stores.thread_records import Threads, open_threads
from server.stores.timed_checkpointer import time_checkpointer
from server.webhooks.delivery import WebhookSender
from server.webhooks.policy import WebhookPolicy
from server.webhooks.run_end import RunWebhooks

logger = logging.getLogger("alma.server")


@dataclass
class Services:
    """The service's parts, shared by every route of one process."""

    settings: Settings
    provider: ModelProvider
    memory: Memory
    graph: CompiledStateGraph[Any, RunContext, Any, Any]
    log: EventLog
    broker: Broker
    leases: RunLeases
    control: Control
    runs: RunManager
    starter: RunStarter
    """The one way every wire format starts a run."""
    run_records: RunRecords
    keys: KeyRing
    owners: ThreadOwners
    threads: Threads
    limits: RateLimits
    instance: str
    observability: Observability
    sampler: ResourceSampler
    crons: Crons
    cron_scheduler: CronScheduler
    """Starts crons' runs; woken when a cron is created or changed here."""
    webhooks: WebhookSender
    """Checks runs' webhook URLs and calls them when the runs end."""
    started: float = field(default_factory=time.time)
    connections: set[Any] = field(default_factory=set)


async def forget_thread(services: Services, thread_id: str) -> None:
    """Delete everything of a thread: checkpoints, runs, record, owner (its event log expires)."""
    await _forget(services.memory, services.run_records, services.threads, thread_id)


async def _forget(
    memory: Memory, run_records: RunRecords, threads: Threads, thread_id: str
) -> None:
    await memory.checkpointer.adelete_thread(thread_id)
    await run_records.delete_thread(thread_id)
    await threads.delete(thread_id)
    await threads.owners.forget(thread_id)


@dataclass(frozen=True)
class _Stores:
    """Where runs' events, leases, signals and records live: Redis, or this process."""

    log: EventLog
    leases: RunLeases
    control: Control
    run_records: RunRecords


def _stores(settings: Settings, memory: Memory) -> _Stores:
    if memory.redis is None:
        return _Stores(
            log=MemoryEventLog(maxlen=settings.event_log_maxlen),
            leases=MemoryRunLeases(),
            control=MemoryControl(),
            run_records=MemoryRunRecords(),
        )
    redis, keys = memory.redis, memory.keys
    return _Stores(
        log=RedisEventLog(
            redis, keys=keys, maxlen=settings.event_log_maxlen, ttl=settings.event_log_ttl
        ),
        leases=RedisRunLeases(redis, keys=keys, lease=settings.run_lease_seconds),
        control=RedisControl(redis, keys=keys),
        run_records=RedisRunRecords(redis, keys=keys, ttl=settings.ttl_seconds),
    )


def service_graph(
    provider: ModelProvider, memory: Memory
) -> CompiledStateGraph[Any, RunContext, Any, Any]:
    """The manager graph as the service runs it: its checkpointer timed and stamped.

    The evaluations measure this graph, not one assembled apart.
    """
    saver = memory.checkpointer
    return build_manager_graph(
        provider=provider,
        checkpointer=stamp_thread(time_checkpointer(saver)) if saver else None,
        store=memory.store,
        cache=memory.cache,
        cache_ttl=memory.cache_ttl,
    )


def _limits(settings: Settings, memory: Memory) -> RateLimits:
    return RateLimits(
        runs=settings.limit_runs,
        tokens=settings.limit_tokens,
        connections=settings.limit_connections,
        writes=settings.limit_writes,
        window=settings.limit_window_seconds,
        redis=memory.redis,
        keys=memory.keys,
    )


def _observability(settings: Settings) -> Observability:
    key = settings.langsmith_api_key
    tracing = Tracing(
        enabled=settings.langsmith_tracing,
        project=settings.langsmith_project,
        api_key=key.get_secret_value() if key else None,
        endpoint=settings.langsmith_endpoint,
        health=ComponentState(),
    )
    if tracing.enabled:
        logger.info("tracing runs to LangSmith project %s", settings.langsmith_project)
    return Observability(prices=PriceTable(settings.model_prices), tracing=tracing)


def _engine(
    settings: Settings,
    memory: Memory,
    graph: CompiledStateGraph[Any, RunContext, Any, Any],
    stores: _Stores,
    threads: Threads,
    limits: RateLimits,
    observability: Observability,
    webhooks: RunWebhooks,
) -> RunManager:
    return RunManager(
        graph=graph,
        log=stores.log,
        leases=stores.leases,
        control=stores.control,
        owner=f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}",
        lease_seconds=settings.run_lease_seconds,
        wait_seconds=settings.multitask_wait_seconds,
        durability=settings.durability,
        context_defaults={"review_plan": settings.review_plan, "memory": settings.remember_users},
        pacing=WritePacing(
            least=settings.event_flush_interval,
            writes_per_second=settings.event_writes_per_second,
        ),
        queue_size=settings.send_queue_size,
        spend_tokens=limits.spend_tokens,
        observability=observability,
        records=stores.run_records,
        on_temporary_end=partial(_forget, memory, stores.run_records, threads),
        on_start=threads.run_created,
        on_end=webhooks.run_ended,
    )


def _webhooks(settings: Settings) -> WebhookSender:
    policy = WebhookPolicy.of(
        settings.webhook_allowed_hosts, allow_private=settings.webhook_allow_private
    )
    return WebhookSender(
        policy,
        timeout=settings.webhook_timeout_seconds,
        attempts=settings.webhook_attempts,
        backoff=settings.webhook_backoff_seconds,
    )


def _starter(
    settings: Settings, runs: RunManager, threads: Threads, limits: RateLimits
) -> RunStarter:
    return RunStarter(
        runs=runs, owners=threads.owners, limits=limits, max_messages=settings.max_messages,
        max_chars=settings.max_message_chars, log_content=settings.log_content,
    )  # fmt: skip


async def _sampler(memory: Memory, settings: Settings) -> ResourceSampler:
    sampler = ResourceSampler(
        interval=settings.metrics_sample_seconds,
        ping=memory.redis.ping if memory.redis is not None else None,
    )
    sampler.sample()
    await sampler.check_redis()
    return sampler


@asynccontextmanager
async def open_services(settings: Settings) -> AsyncIterator[Services]:
    """Build the service's parts, and take them down in order (runs drained first).

    The one composition root: the server, `alma chat` and the evaluations' graph
    (`service_graph`) are built here.
    """
    provider = ModelProvider.from_settings(settings)
    level = logging.WARNING if provider.is_simulated else logging.INFO
    logger.log(level, "model provider: %s", provider.description)
    async with open_memory(settings) as memory:
        graph = service_graph(provider, memory)
        stores = _stores(settings, memory)
        threads = open_threads(memory.redis, keys=memory.keys, ttl=settings.ttl_seconds)
        limits = _limits(settings, memory)
        observability = _observability(settings)
        webhooks = _webhooks(settings)
        runs = _engine(
            settings, memory, graph, stores, threads, limits, observability,
            RunWebhooks(webhooks, graph),
        )  # fmt: skip
        sampler = await _sampler(memory, settings)
        starter = _starter(settings, runs, threads, limits)
        crons = open_crons(memory.redis, keys=memory.keys)
        scheduler = CronScheduler(
            crons=crons, starter=starter, poll_seconds=settings.cron_poll_seconds
        )
        ticking = asyncio.create_task(scheduler.run())
        tasks = [
            asyncio.create_task(stores.control.listen(runs.on_control)),
            asyncio.create_task(sampler.run()),
        ]
        try:
            yield Services(
                settings=settings, provider=provider, memory=memory, graph=graph,
                log=stores.log, broker=runs.broker, leases=stores.leases,
                control=stores.control, runs=runs,
                starter=starter,
                run_records=stores.run_records, keys=KeyRing(settings.key_owners()),
                owners=threads.owners, threads=threads, limits=limits, instance=runs.owner,
                observability=observability, sampler=sampler, crons=crons,
                cron_scheduler=scheduler, webhooks=webhooks,
            )  # fmt: skip
        finally:
            # No cron starts a run while the runs drain (the other processes tick on).
            ticking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticking
            await runs.shutdown(settings.shutdown_grace_seconds)
            await webhooks.aclose(settings.shutdown_grace_seconds)
            await runs.broker.close()
            await limits.aclose()
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await observability.tracing.aclose()
            await provider.aclose()
            process_ended(os.getpid())
