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
from typing import Any

from langgraph.graph.state import CompiledStateGraph

from graphs.manager import build_manager_graph
from memory.factory import Memory, open_memory
from nodes.models import ModelProvider
from nodes.run_context import RunContext
from server.auth import KeyRing
from server.broker import Broker
from server.checkpoint_metadata import stamp_thread
from server.coordination import (
    Control,
    MemoryControl,
    MemoryRunLeases,
    RedisControl,
    RedisRunLeases,
    RunLeases,
)
from server.engine import RunManager
from server.event_log import EventLog, MemoryEventLog, RedisEventLog
from server.limits import RateLimits
from server.metrics import ComponentState, ResourceSampler, process_ended
from server.observer import Observability
from server.owners import ThreadOwners
from server.pricing import PriceTable
from server.run_records import MemoryRunRecords, RedisRunRecords, RunRecords
from server.settings import Settings
from server.thread_records import Threads, open_threads
from server.timed_checkpointer import time_checkpointer
from server.tracing import Tracing

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
    run_records: RunRecords
    keys: KeyRing
    owners: ThreadOwners
    threads: Threads
    limits: RateLimits
    instance: str
    observability: Observability
    sampler: ResourceSampler
    started: float = field(default_factory=time.time)
    connections: set[Any] = field(default_factory=set)


async def forget_thread(services: Services, thread_id: str) -> None:
    """Delete everything of a thread: checkpoints, runs, record, owner (its event log expires)."""
    await services.memory.checkpointer.adelete_thread(thread_id)
    await services.run_records.delete_thread(thread_id)
    await services.threads.delete(thread_id)
    await services.owners.forget(thread_id)


@asynccontextmanager
async def open_services(settings: Settings) -> AsyncIterator[Services]:
    """Build the service's parts, and take them down in order (runs drained first)."""
    provider = ModelProvider.from_settings(settings)
    logger.log(
        logging.WARNING if provider.is_simulated else logging.INFO,
        "model provider: %s",
        provider.description,
    )
    async with open_memory(settings) as memory:
        graph = build_manager_graph(
            provider=provider,
            checkpointer=(
                stamp_thread(time_checkpointer(memory.checkpointer))
                if memory.checkpointer
                else None
            ),
            cache=memory.cache,
            cache_ttl=memory.cache_ttl,
        )
        log: EventLog
        leases: RunLeases
        control: Control
        threads = open_threads(memory.redis, keys=memory.keys, ttl=settings.ttl_seconds)
        owners: ThreadOwners = threads.owners
        limits = RateLimits(
            runs=settings.limit_runs,
            tokens=settings.limit_tokens,
            connections=settings.limit_connections,
            writes=settings.limit_writes,
            window=settings.limit_window_seconds,
            redis=memory.redis,
            keys=memory.keys,
        )
        if memory.redis is not None:
            log = RedisEventLog(
                memory.redis,
                keys=memory.keys,
                maxlen=settings.event_log_maxlen,
                ttl=settings.event_log_ttl,
            )
            leases = RedisRunLeases(
                memory.redis, keys=memory.keys, lease=settings.run_lease_seconds
            )
            control = RedisControl(memory.redis, keys=memory.keys)
            run_records: RunRecords = RedisRunRecords(
                memory.redis, keys=memory.keys, ttl=settings.ttl_seconds
            )
        else:
            log = MemoryEventLog(maxlen=settings.event_log_maxlen)
            leases = MemoryRunLeases()
            control = MemoryControl()
            run_records = MemoryRunRecords()
        instance = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        runs: RunManager
        broker = Broker(
            log=log,
            queue_size=settings.send_queue_size,
            run_origin=lambda thread_id: runs.run_origin(thread_id),
            on_orphan=lambda thread_id: runs.close_orphan(thread_id),
        )
        observability = Observability(
            prices=PriceTable(settings.model_prices),
            tracing=Tracing(
                enabled=settings.langsmith_tracing,
                project=settings.langsmith_project,
                api_key=(
                    settings.langsmith_api_key.get_secret_value()
                    if settings.langsmith_api_key
                    else None
                ),
                endpoint=settings.langsmith_endpoint,
                health=ComponentState(),
            ),
        )
        if observability.tracing.enabled:
            logger.info("tracing runs to LangSmith project %s", settings.langsmith_project)
        runs = RunManager(
            graph=graph,
            log=log,
            broker=broker,
            leases=leases,
            control=control,
            owner=instance,
            lease_seconds=settings.run_lease_seconds,
            wait_seconds=settings.multitask_wait_seconds,
            spend_tokens=limits.spend_tokens,
            observability=observability,
            records=run_records,
            on_temporary_end=lambda thread_id: forget_thread(services, thread_id),
            on_start=lambda thread_id: services.threads.run_created(thread_id),
        )
        keys = KeyRing(settings.key_owners())
        if not keys.required:
            logger.warning(
                "authentication off: no ALMA_API_KEYS (development mode); every client "
                "is the owner 'local' and limits count per client address"
            )
        listener = asyncio.create_task(control.listen(runs.on_control))
        sampler = ResourceSampler(
            interval=settings.metrics_sample_seconds,
            ping=memory.redis.ping if memory.redis is not None else None,
        )
        sampler.sample()
        await sampler.check_redis()
        sampling = asyncio.create_task(sampler.run())
        services = Services(
            settings=settings,
            provider=provider,
            memory=memory,
            graph=graph,
            log=log,
            broker=broker,
            leases=leases,
            control=control,
            runs=runs,
            run_records=run_records,
            keys=keys,
            owners=owners,
            threads=threads,
            limits=limits,
            instance=instance,
            observability=observability,
            sampler=sampler,
        )
        try:
            yield services
        finally:
            await runs.shutdown(settings.shutdown_grace_seconds)
            await broker.close()
            await limits.aclose()
            for task in (listener, sampling):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await observability.tracing.aclose()
            await provider.aclose()
            process_ended(os.getpid())
