"""Benchmark the Redis checkpointer against LangGraph's `InMemorySaver`, and plainredis's.

Both savers get the same threads: `--steps` checkpoints in the root namespace, each the
child of the one before, over `--channels` channels (a `messages` channel that grows by a
human/AI pair per step, plus small strings, dicts and ints that change now and then), and
a task's writes after every checkpoint. Each call is timed alone (p50, p99, ops/s), then
`--concurrency` tasks write a thread each at once (total ops/s for put + get_tuple).

Then, on the same Redis, ALMA's saver meets `langgraph-checkpoint-plainredis`'s: a
third-party LangGraph checkpointer that, like ALMA's, needs no Redis modules, so the one
ALMA's could be swapped for and the one its speed is worth knowing against. ALMA's is built
as the service builds it (`memory.factory.open_memory`, default settings, so the default
thread TTL); plainredis's gets the same TTL, since both then pay for expiring keys. Both
replay what LangGraph's loop asks of a checkpointer when a graph runs with durability
"async": a run starts with `aget_tuple` (latest), and each super-step (a "step" below) is an
`aput` of the new checkpoint and an `aput_writes` of its task's writes. Threads are written
one at a time (latency), then `--concurrency` at once (throughput); the figures are steps/s,
per-step p50/p99, and each call's p50/p99. A saver that raises, or reads back something
else than was written, is reported as failed with the call that failed, and the exit
status is 1: a broken contender is a finding too.

Run it with `python -m loadtests.memory_bench` (`--only` runs one half). Without
`--redis-url` it starts a private `redis-server` on a free loopback port and stops it at the
end; with one, it writes only under fresh key prefixes and deletes what it wrote when done.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import platform
import random
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any, TypeVar

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    create_checkpoint,
    empty_checkpoint,
)
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from pydantic import RedisDsn
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from loadtests.processes import RedisTarget, StartError, redis_target
from memory.aio import AsyncRedisSaver
from memory.connection import redact_url
from memory.factory import RedisUnavailableError, open_memory
from memory.settings import MemorySettings

T = TypeVar("T")

LOOPBACK = "127.0.0.1"
LIST_LIMIT = 10
LIST_REPEATS = 5
"""How often each finished thread is listed, per kind of list."""
WARM_UP_STEPS = 5
STARTUP_TIMEOUT_S = 10.0
TIME_LIMIT_S = 900.0
"""Longest one saver's run may take before the benchmark gives up."""

IN_MEMORY = "InMemorySaver"
REDIS = "AsyncRedisSaver"
SAVERS = (IN_MEMORY, REDIS)

PUT = "aput"
PUT_WRITES = "aput_writes"
GET_LATEST = "aget_tuple(latest)"
GET_BY_ID = "aget_tuple(id)"
LIST_ALL = "alist()"
LIST_SOME = f"alist(limit={LIST_LIMIT})"
OPERATIONS = (PUT, PUT_WRITES, GET_LATEST, GET_BY_ID, LIST_ALL, LIST_SOME)
"""Every operation timed on its own, in the order the table shows them."""

ALMA = "ALMA"
PLAINREDIS = "plainredis"
COMPARED = (ALMA, PLAINREDIS)
"""The savers side by side, in the order the comparison shows them."""
PLAINREDIS_PACKAGE = "langgraph-checkpoint-plainredis"
STEP = "step"
"""A super-step of a graph run: `aput` then `aput_writes`, timed as one."""
SEQUENTIAL = "sequential"
CONCURRENT = "concurrent"
MODES = (SEQUENTIAL, CONCURRENT)
CLEAN_UP = "clean-up"
LEFT_EXAMPLES = 3
"""Keys a saver left behind that the report names."""

OPERATIONS_PART = "operations"
COMPARISON_PART = "comparison"
PARTS = (OPERATIONS_PART, COMPARISON_PART)
"""What `--only` chooses from; a run without it does both."""

WORDS = (
    "the report shows revenue grew in every region while costs stayed flat so margins "
    "improved and the team expects a similar quarter next year if demand holds steady "
    "across product lines customers asked about pricing delivery times and support"
).split()
ChannelMaker = Callable[[random.Random, int], Any]


class BenchError(RuntimeError):
    """The benchmark cannot run or gave up (no redis-server, time limit, wrong results)."""


# -- workload --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Step:
    """One super-step of a thread: channel values after it, and what changed."""

    values: dict[str, Any]
    """Every channel's value once the step is done."""
    changed: tuple[str, ...]
    """Channels written in this step; only these get a new version."""
    task_id: str
    writes: tuple[tuple[str, Any], ...]
    """What the step's task writes against the new checkpoint."""


def _text(rng: random.Random, length: int) -> str:
    words: list[str] = []
    size = 0
    while size < length:
        word = rng.choice(WORDS)
        words.append(word)
        size += len(word) + 1
    return " ".join(words)[:length]


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _message_pair(rng: random.Random) -> tuple[HumanMessage, AIMessage]:
    asked, answered = rng.randint(40, 60), rng.randint(40, 60)
    human = HumanMessage(content=_text(rng, 200), id=_uuid(rng))
    ai = AIMessage(
        content=_text(rng, 200),
        id=f"run-{_uuid(rng)}",
        response_metadata={"model_name": "gpt-4o-mini", "finish_reason": "stop"},
        usage_metadata={
            "input_tokens": asked,
            "output_tokens": answered,
            "total_tokens": asked + answered,
        },
    )
    return human, ai


SMALL_CHANNELS: tuple[tuple[str, ChannelMaker], ...] = (
    ("route", lambda rng, step: rng.choice(["creative", "analytical"])),
    ("request", lambda rng, step: _text(rng, 80)),
    ("turn", lambda rng, step: step),
    ("context", lambda rng, step: {"user_id": _uuid(rng), "locale": "en-GB", "tokens": step}),
    ("summary", lambda rng, step: _text(rng, 300)),
    ("usage", lambda rng, step: {"input_tokens": 50 * step, "output_tokens": 40 * step}),
    ("branch:to:respond", lambda rng, step: None),
    ("options", lambda rng, step: {"temperature": rng.random(), "cache": step % 2 == 0}),
    ("scores", lambda rng, step: [round(rng.random(), 3) for _ in range(5)]),
)
"""Small channels, cycled (with a suffix) when more are asked for than listed."""


def _small_channels(count: int) -> list[tuple[str, ChannelMaker]]:
    chosen = []
    for index in range(count):
        name, make = SMALL_CHANNELS[index % len(SMALL_CHANNELS)]
        cycle = index // len(SMALL_CHANNELS)
        chosen.append((f"{name}_{cycle}" if cycle else name, make))
    return chosen


def build_plan(*, steps: int, channels: int, seed: int) -> list[Step]:
    """The steps every thread of the benchmark goes through, the same for both savers.

    Args:
        steps: Checkpoints per thread.
        channels: Channels in all, `messages` included.
        seed: Seeds the content and which small channels change at each step.

    Returns:
        One `Step` per checkpoint.
    """
    rng = random.Random(seed)
    small = _small_channels(channels - 1)
    messages: list[BaseMessage] = []
    values: dict[str, Any] = {}
    plan: list[Step] = []
    for index in range(steps):
        human, ai = _message_pair(rng)
        messages += [human, ai]
        values["messages"] = list(messages)
        changed = ["messages"]
        for name, make in small:
            if index == 0 or rng.random() < 0.3:
                values[name] = make(rng, index)
                changed.append(name)
        writes: list[tuple[str, Any]] = [("messages", [ai]), ("route", values.get("route"))]
        if rng.random() < 0.5:
            writes.append(("branch:to:respond", None))
        plan.append(Step(dict(values), tuple(changed), _uuid(rng), tuple(writes)))
    return plan


@dataclass(slots=True)
class ThreadState:
    """A thread being written: its ids, run, and channel versions so far."""

    thread_id: str
    run_id: str
    versions: dict[str, str] = field(default_factory=dict)
    ids: list[str] = field(default_factory=list)

    def config(self, checkpoint_id: str | None = None) -> RunnableConfig:
        """The thread's config, naming `checkpoint_id` if given."""
        configurable: dict[str, Any] = {"thread_id": self.thread_id, "checkpoint_ns": ""}
        if checkpoint_id is not None:
            configurable["checkpoint_id"] = checkpoint_id
        return {"configurable": configurable}


@dataclass(frozen=True, slots=True)
class PutArgs:
    """The arguments of one `aput`, built outside the timed call."""

    config: RunnableConfig
    checkpoint: Checkpoint
    metadata: CheckpointMetadata
    new_versions: ChannelVersions


def prepare_put(
    saver: BaseCheckpointSaver[str], state: ThreadState, index: int, step: Step
) -> PutArgs:
    """Build the next checkpoint of `state`'s thread as LangGraph's loop would.

    Only channels the step wrote get a new version (from the saver itself) and go in
    `new_versions`; the checkpoint's parent is the thread's latest checkpoint.
    """
    seen: ChannelVersions = {**state.versions}
    new_versions = {
        channel: saver.get_next_version(state.versions.get(channel), None)
        for channel in step.changed
    }
    state.versions.update(new_versions)
    draft = empty_checkpoint()
    draft["channel_values"] = dict(step.values)
    draft["channel_versions"] = {**state.versions}
    draft["versions_seen"] = {"agent": seen}
    checkpoint = create_checkpoint(draft, None, index)
    checkpoint["updated_channels"] = list(step.changed)
    # LangGraph's server puts the run id in the metadata; the Redis saver indexes it.
    metadata: CheckpointMetadata = {
        "source": "input" if index == 0 else "loop",
        "step": index - 1,
        "parents": {},
        "run_id": state.run_id,
    }
    parent = state.ids[-1] if state.ids else None
    return PutArgs(state.config(parent), checkpoint, metadata, {**new_versions})


# -- timing ----------------------------------------------------------------------------


@dataclass(slots=True)
class Samples:
    """Latencies in nanoseconds, by operation."""

    by_operation: defaultdict[str, list[int]] = field(default_factory=lambda: defaultdict(list))

    async def time(self, operation: str, pending: Awaitable[T]) -> T:
        """Await `pending` and record how long it took under `operation`."""
        start = time.perf_counter_ns()
        result = await pending
        self.by_operation[operation].append(time.perf_counter_ns() - start)
        # On Python 3.11, asyncio.wait_for (redis-py wraps every send in it) drops a
        # cancellation that arrives just as the send completes; raise it, so Ctrl-C stops.
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise asyncio.CancelledError
        return result


@dataclass(frozen=True, slots=True)
class Figures:
    """One row of the table: an operation's latencies on one saver."""

    saver: str
    operation: str
    count: int
    p50_ms: float
    p99_ms: float
    ops_per_s: float
    """Calls per second of time spent in the call, one call at a time."""


@dataclass(frozen=True, slots=True)
class Throughput:
    """Concurrent tasks each writing a thread: put + get_tuple per step."""

    saver: str
    tasks: int
    ops: int
    seconds: float
    ops_per_s: float
    put_p99_ms: float
    get_tuple_p99_ms: float


def percentile(ordered: Sequence[int], percent: float) -> int:
    """Nearest-rank percentile of sorted samples."""
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return ordered[rank - 1]


def summarise(saver: str, samples: Samples) -> list[Figures]:
    """A row per timed operation, in `OPERATIONS` order."""
    rows = []
    for operation in OPERATIONS:
        ordered = sorted(samples.by_operation.get(operation, []))
        if not ordered:
            continue
        rows.append(
            Figures(
                saver=saver,
                operation=operation,
                count=len(ordered),
                p50_ms=percentile(ordered, 50) / 1e6,
                p99_ms=percentile(ordered, 99) / 1e6,
                ops_per_s=len(ordered) / (sum(ordered) / 1e9),
            )
        )
    return rows


# -- running the workload --------------------------------------------------------------


@dataclass(slots=True)
class Created:
    """Threads and runs the benchmark wrote, so they can be deleted at the end."""

    threads: list[str] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)

    def new_thread(self, label: str) -> ThreadState:
        """Start (and remember) the thread `bench-<label>`."""
        state = ThreadState(thread_id=f"bench-{label}", run_id=f"bench-run-{label}")
        self.threads.append(state.thread_id)
        self.runs.append(state.run_id)
        return state


async def _drain(listing: AsyncIterator[CheckpointTuple]) -> list[CheckpointTuple]:
    return [found async for found in listing]


def _expect(condition: bool, what: str) -> None:
    if not condition:
        raise BenchError(f"the saver returned a wrong result: {what}")


async def write_thread(
    saver: BaseCheckpointSaver[str],
    plan: Sequence[Step],
    state: ThreadState,
    samples: Samples,
    rng: random.Random,
) -> None:
    """Write a thread step by step, timing each call, then list it `LIST_REPEATS` times."""
    for index, step in enumerate(plan):
        put = prepare_put(saver, state, index, step)
        stored = await samples.time(
            PUT, saver.aput(put.config, put.checkpoint, put.metadata, put.new_versions)
        )
        state.ids.append(stored["configurable"]["checkpoint_id"])
        await samples.time(PUT_WRITES, saver.aput_writes(stored, step.writes, step.task_id))
        latest = await samples.time(GET_LATEST, saver.aget_tuple(state.config()))
        _expect(latest is not None and latest.checkpoint["id"] == state.ids[-1], "latest")
        if len(state.ids) > 1:
            earlier = rng.choice(state.ids[:-1])
            found = await samples.time(GET_BY_ID, saver.aget_tuple(state.config(earlier)))
            _expect(found is not None and found.checkpoint["id"] == earlier, "by id")
    for _ in range(LIST_REPEATS):
        listed = await samples.time(LIST_ALL, _drain(saver.alist(state.config())))
        _expect(len(listed) == len(plan), "list of the whole thread")
        some = await samples.time(LIST_SOME, _drain(saver.alist(state.config(), limit=LIST_LIMIT)))
        _expect(len(some) == min(LIST_LIMIT, len(plan)), "list with a limit")


async def run_sequential(
    saver: BaseCheckpointSaver[str],
    plan: Sequence[Step],
    *,
    threads: int,
    seed: int,
    created: Created,
) -> Samples:
    """Write `threads` threads one after another, after an untimed warm-up thread."""
    await write_thread(
        saver, plan[:WARM_UP_STEPS], created.new_thread("warm-up"), Samples(), random.Random(0)
    )
    samples = Samples()
    for index in range(threads):
        rng = random.Random(f"{seed}:{index}")
        await write_thread(saver, plan, created.new_thread(f"t{index}"), samples, rng)
    return samples


async def run_concurrent(
    name: str,
    saver: BaseCheckpointSaver[str],
    plan: Sequence[Step],
    *,
    tasks: int,
    created: Created,
) -> Throughput:
    """Let `tasks` tasks each write a thread at once: `aput` then `aget_tuple` per step."""
    samples = Samples()

    async def write(state: ThreadState) -> None:
        for index, step in enumerate(plan):
            put = prepare_put(saver, state, index, step)
            stored = await samples.time(
                PUT, saver.aput(put.config, put.checkpoint, put.metadata, put.new_versions)
            )
            state.ids.append(stored["configurable"]["checkpoint_id"])
            await samples.time(GET_LATEST, saver.aget_tuple(state.config()))

    states = [created.new_thread(f"c{index}") for index in range(tasks)]
    start = time.perf_counter_ns()
    async with asyncio.TaskGroup() as group:
        for state in states:
            group.create_task(write(state))
    seconds = (time.perf_counter_ns() - start) / 1e9
    ops = sum(len(latencies) for latencies in samples.by_operation.values())
    return Throughput(
        saver=name,
        tasks=tasks,
        ops=ops,
        seconds=seconds,
        ops_per_s=ops / seconds,
        put_p99_ms=percentile(sorted(samples.by_operation[PUT]), 99) / 1e6,
        get_tuple_p99_ms=percentile(sorted(samples.by_operation[GET_LATEST]), 99) / 1e6,
    )


@dataclass(frozen=True, slots=True)
class SaverResult:
    """Everything measured on one saver."""

    rows: list[Figures]
    throughput: Throughput
    left_behind_keys: int | None
    """Keys of the benchmark still in Redis after clean-up; `None` for process memory."""


async def clean_up(saver: BaseCheckpointSaver[str], created: Created) -> int | None:
    """Delete every thread (and run index) the benchmark wrote; count what is left."""
    if isinstance(saver, AsyncRedisSaver):
        await saver.adelete_for_runs(created.runs)
    for thread_id in created.threads:
        await saver.adelete_thread(thread_id)
    if not isinstance(saver, AsyncRedisSaver):
        return None
    keys = [key for thread_id in created.threads for key in saver.thread_keys(thread_id).all]
    keys += [saver.run_key(run_id) for run_id in created.runs]
    left: int = await saver.client.exists(*keys)
    return left


async def bench_saver(
    name: str, saver: BaseCheckpointSaver[str], plan: Sequence[Step], options: Options
) -> SaverResult:
    """Run the sequential and the concurrent workload on `saver`, then delete its threads.

    Raises:
        BenchError: when the run takes longer than `TIME_LIMIT_S`.
    """
    created = Created()
    gc.collect()
    try:
        async with asyncio.timeout(TIME_LIMIT_S):
            _progress(f"{name}: {options.threads} threads one at a time")
            samples = await run_sequential(
                saver, plan, threads=options.threads, seed=options.seed, created=created
            )
            _progress(f"{name}: {options.concurrency} threads at once")
            throughput = await run_concurrent(
                name, saver, plan, tasks=options.concurrency, created=created
            )
    except TimeoutError as exc:
        raise BenchError(f"{name} took longer than {TIME_LIMIT_S:.0f} s; stopped") from exc
    finally:
        left = await clean_up(saver, created)
    return SaverResult(summarise(name, samples), throughput, left)


# -- Redis -----------------------------------------------------------------------------


@asynccontextmanager
async def open_redis_saver(url: str, prefix: str) -> AsyncIterator[AsyncRedisSaver]:
    """An `AsyncRedisSaver` on `url` writing only under `prefix`, checked and ready."""
    async with AsyncRedisSaver.from_conn_string(url, prefix=prefix, ttl=None) as saver:
        await saver.asetup()
        try:
            yield saver
        finally:
            await saver.client.delete(saver.keys.layout)  # the prefix's, written by asetup


async def redis_version(client: Redis | RedisCluster) -> str:
    """The `redis_version` the server reports."""
    info: dict[str, Any] = await client.info("server")
    return str(info.get("redis_version", "unknown"))


# -- comparison: a graph run's steps on ALMA's saver and on plainredis's ---------------


class OperationFailed(Exception):
    """A compared saver raised, or read back something else, in one operation."""

    def __init__(self, operation: str, error: str) -> None:
        super().__init__(f"{operation}: {error}")
        self.operation = operation
        self.error = error


@dataclass(frozen=True, slots=True)
class Failure:
    """Where a compared saver failed, and how."""

    saver: str
    mode: str
    """`sequential`, `concurrent` or `clean-up`."""
    operation: str
    error: str


@dataclass(slots=True)
class Contender:
    """A saver of the comparison, the Redis it writes to, and what it wrote there."""

    name: str
    saver: BaseCheckpointSaver[Any]
    client: Redis
    prefix: str
    """Every key the saver writes starts with `prefix:`."""
    description: str
    created: Created = field(default_factory=Created)
    failures: list[Failure] = field(default_factory=list)
    own_keys: frozenset[str] = frozenset()
    """Keys the saver keeps for its prefix, not for a thread (not a leak when left)."""


@dataclass(frozen=True, slots=True)
class StepRun:
    """One saver's steps in one mode: how many a second, and how long each took."""

    saver: str
    mode: str
    tasks: int
    """Threads written at once: 1 when sequential."""
    steps: int
    seconds: float
    """Wall-clock time of the threads' calls; building their checkpoints is left out."""
    steps_per_s: float
    step_p50_ms: float
    step_p99_ms: float
    operations: list[Figures]
    """`aput`, `aput_writes` and `aget_tuple(latest)` on their own, in the same run."""


@dataclass(frozen=True, slots=True)
class Comparison:
    """ALMA's saver and plainredis's on the same steps, and what went wrong."""

    savers: dict[str, str]
    """How each saver was built, by name."""
    ttl_seconds: int | None
    run_steps: int
    """Steps per graph run; each run starts with `aget_tuple(latest)`."""
    runs: list[StepRun]
    """A row per saver and mode that completed, savers within modes."""
    ratios: dict[str, float | None]
    """ALMA's steps/s ÷ plainredis's, by mode; `None` where either failed."""
    failures: list[Failure]
    left_behind_keys: dict[str, int]
    """Keys under each saver's prefix once it deleted its threads (then removed)."""
    left_behind_examples: dict[str, list[str]]
    """The first few of those keys, by name, to tell a counter from a lost thread."""


async def attempt(samples: Samples, operation: str, pending: Awaitable[T]) -> T:
    """`samples.time`, with whatever the saver raises turned into `OperationFailed`."""
    try:
        return await samples.time(operation, pending)
    except Exception as exc:
        # A third-party saver may raise anything: the report names it instead of stopping.
        raise OperationFailed(operation, f"{type(exc).__name__}: {exc}") from exc


def prepare_thread(
    saver: BaseCheckpointSaver[str], plan: Sequence[Step], state: ThreadState
) -> list[PutArgs]:
    """Every checkpoint of `state`'s thread, built before the clock starts.

    Building checkpoints is LangGraph's work, not the saver's, so the figures leave it
    out; `state.ids` then holds the ids every step is expected to store.
    """
    prepared = []
    for index, step in enumerate(plan):
        put = prepare_put(saver, state, index, step)
        state.ids.append(put.checkpoint["id"])
        prepared.append(put)
    return prepared


def latest_mismatch(
    latest: CheckpointTuple | None, plan: Sequence[Step], state: ThreadState, done: int
) -> str | None:
    """What is wrong with the latest checkpoint read after `done` steps, if anything.

    Only sizes are compared: enough to catch a saver that is fast because it loses data,
    cheap enough not to weigh on the figures.
    """
    if done == 0:
        return None if latest is None else "a checkpoint on a thread not written yet"
    if latest is None:
        return f"no checkpoint after {done} steps"
    if latest.checkpoint["id"] != state.ids[done - 1]:
        return f"checkpoint {latest.checkpoint['id']}, not the latest {state.ids[done - 1]}"
    last = plan[done - 1]
    messages = latest.checkpoint["channel_values"].get("messages", [])
    if len(messages) != len(last.values["messages"]):
        return f"{len(messages)} messages, not {len(last.values['messages'])}"
    if len(latest.pending_writes or []) != len(last.writes):
        return f"{len(latest.pending_writes or [])} pending writes, not {len(last.writes)}"
    return None


async def write_runs(
    saver: BaseCheckpointSaver[str],
    plan: Sequence[Step],
    prepared: Sequence[PutArgs],
    state: ThreadState,
    samples: Samples,
    run_steps: int,
) -> None:
    """Write a thread as a graph's runs do, `run_steps` steps a run.

    Raises:
        OperationFailed: when the saver raises or reads back something else.
    """
    for index, (put, step) in enumerate(zip(prepared, plan, strict=True)):
        if index % run_steps == 0:
            latest = await attempt(samples, GET_LATEST, saver.aget_tuple(state.config()))
            mismatch = latest_mismatch(latest, plan, state, index)
            if mismatch is not None:
                raise OperationFailed(GET_LATEST, f"wrong result: {mismatch}")
        start = time.perf_counter_ns()
        stored = await attempt(
            samples, PUT, saver.aput(put.config, put.checkpoint, put.metadata, put.new_versions)
        )
        stored_id = stored.get("configurable", {}).get("checkpoint_id")
        if stored_id != put.checkpoint["id"]:
            raise OperationFailed(PUT, f"wrong result: stored as {stored_id!r}")
        await attempt(samples, PUT_WRITES, saver.aput_writes(stored, step.writes, step.task_id))
        samples.by_operation[STEP].append(time.perf_counter_ns() - start)


async def write_at_once(
    contender: Contender, plan: Sequence[Step], labels: Sequence[str], run_steps: int
) -> tuple[Samples, float]:
    """Write a thread per label, all at once; the samples and the wall-clock seconds.

    A failing thread does not stop the others: they finish, so the time is that of the
    same work, and the first failure is raised at the end.

    Raises:
        OperationFailed: the first failure of any thread.
    """
    samples = Samples()
    states = [contender.created.new_thread(label) for label in labels]
    prepared = [prepare_thread(contender.saver, plan, state) for state in states]
    failures: list[OperationFailed] = []

    async def write(state: ThreadState, puts: list[PutArgs]) -> None:
        try:
            await write_runs(contender.saver, plan, puts, state, samples, run_steps)
        except OperationFailed as exc:
            failures.append(exc)

    start = time.perf_counter_ns()
    async with asyncio.TaskGroup() as group:
        for state, puts in zip(states, prepared, strict=True):
            group.create_task(write(state, puts))
    seconds = (time.perf_counter_ns() - start) / 1e9
    if failures:
        raise failures[0]
    return samples, seconds


async def write_one_at_a_time(
    contender: Contender, plan: Sequence[Step], labels: Sequence[str], run_steps: int
) -> tuple[Samples, float]:
    """Write a thread per label, one after another; the samples and the seconds in calls.

    Raises:
        OperationFailed: at the first failure.
    """
    samples = Samples()
    seconds = 0.0
    for label in labels:
        state = contender.created.new_thread(label)
        prepared = prepare_thread(contender.saver, plan, state)
        start = time.perf_counter_ns()
        await write_runs(contender.saver, plan, prepared, state, samples, run_steps)
        seconds += (time.perf_counter_ns() - start) / 1e9
    return samples, seconds


def step_run(name: str, mode: str, tasks: int, samples: Samples, seconds: float) -> StepRun:
    """Steps/s and the steps' and calls' latencies of one saver in one mode."""
    steps = sorted(samples.by_operation[STEP])
    return StepRun(
        saver=name,
        mode=mode,
        tasks=tasks,
        steps=len(steps),
        seconds=seconds,
        steps_per_s=len(steps) / seconds,
        step_p50_ms=percentile(steps, 50) / 1e6,
        step_p99_ms=percentile(steps, 99) / 1e6,
        operations=summarise(name, samples),
    )


async def measure(
    contender: Contender, mode: str, plan: Sequence[Step], options: Options
) -> StepRun | None:
    """Time `contender` in `mode`; `None`, with the failure recorded, if it failed."""
    gc.collect()
    _progress(f"comparison, {contender.name}: {mode}")
    try:
        async with asyncio.timeout(TIME_LIMIT_S):
            if mode == SEQUENTIAL:
                labels = [f"s{index}" for index in range(options.threads)]
                samples, seconds = await write_one_at_a_time(
                    contender, plan, labels, options.run_steps
                )
                return step_run(contender.name, mode, 1, samples, seconds)
            labels = [f"c{index}" for index in range(options.concurrency)]
            samples, seconds = await write_at_once(contender, plan, labels, options.run_steps)
            return step_run(contender.name, mode, options.concurrency, samples, seconds)
    except OperationFailed as exc:
        failure = Failure(contender.name, mode, exc.operation, exc.error)
    except TimeoutError:
        failure = Failure(contender.name, mode, "-", f"took longer than {TIME_LIMIT_S:.0f} s")
    contender.failures.append(failure)
    _progress(f"comparison, {contender.name}: {mode} FAILED in {failure.operation}")
    return None


async def warm_up(contender: Contender, plan: Sequence[Step], options: Options) -> None:
    """Untimed short threads, `--concurrency` at once: pools connected, code paths warm."""
    labels = [f"w{index}" for index in range(options.concurrency)]
    try:
        await write_at_once(contender, plan[:WARM_UP_STEPS], labels, options.run_steps)
    except OperationFailed as exc:
        # Recorded, not raised: the timed runs will fail the same way, and say so there.
        _progress(f"comparison, {contender.name}: warm-up failed in {exc}")


async def clear(contender: Contender) -> list[str]:
    """Delete the saver's threads its own way; the keys it left, deleted by us then."""
    try:
        await clean_up(contender.saver, contender.created)
    except Exception as exc:
        # A saver that cannot delete its threads is a finding, not a reason to stop.
        error = f"{type(exc).__name__}: {exc}"
        contender.failures.append(Failure(contender.name, CLEAN_UP, "adelete_thread", error))
    found = [key async for key in contender.client.scan_iter(match=f"{contender.prefix}:*")]
    if found:
        await contender.client.unlink(*found)
    left = (key.decode() if isinstance(key, bytes) else str(key) for key in found)
    return sorted(key for key in left if key not in contender.own_keys)


def service_settings(url: str, prefix: str) -> MemorySettings:
    """The service's default memory settings, pointed at `url` and `prefix`.

    Built from the defaults, not the environment: a developer's `ALMA_*` variables (an
    encryption key, a shorter TTL) would otherwise change what is measured.

    Raises:
        BenchError: when the service could not use `url` either.
    """
    try:
        dsn = RedisDsn(url)
    except ValueError as exc:
        raise BenchError(f"the service cannot use {redact_url(url)}: {exc}") from exc
    return MemorySettings.model_construct(redis_url=dsn, redis_prefix=prefix, redis_required=True)


@asynccontextmanager
async def open_alma(settings: MemorySettings) -> AsyncIterator[Contender]:
    """ALMA's saver as the service opens it (`open_memory`), on its own Redis client."""
    try:
        async with open_memory(settings) as memory:
            saver, client = memory.checkpointer, memory.redis
            if not isinstance(saver, AsyncRedisSaver) or not isinstance(client, Redis):
                raise BenchError(f"open_memory gave {memory.description}, not a Redis saver")
            description = (
                f"memory.aio.AsyncRedisSaver as memory.factory.open_memory builds it "
                f"(default settings: ttl {saver.ttl} s, up to "
                f"{settings.redis_max_connections} connections)"
            )
            # The layout's mark stays with the prefix once `asetup` has checked it.
            own = frozenset({saver.keys.layout})
            yield Contender(ALMA, saver, client, settings.redis_prefix, description, own_keys=own)
    except RedisUnavailableError as exc:
        raise BenchError(str(exc)) from exc


@asynccontextmanager
async def open_plainredis(url: str, prefix: str, ttl: int | None) -> AsyncIterator[Contender]:
    """The async saver of `langgraph-checkpoint-plainredis`, built from `url`, with `ttl`.

    Imported here, not at the top: the package is a dev dependency, and the operations
    half of the benchmark (and `percentile`, which other load tools import) needs none.

    Raises:
        BenchError: when the package is not installed.
    """
    try:
        from langgraph_checkpoint_plainredis import AsyncRedisSaver as PlainRedisSaver
    except ImportError as exc:
        raise BenchError(
            f"{PLAINREDIS_PACKAGE} is not installed (pip install -c constraints.txt "
            "-e '.[dev]'); --only operations runs without it"
        ) from exc
    saver = PlainRedisSaver(url=url, prefix=prefix, ttl=ttl)
    description = (
        f"langgraph_checkpoint_plainredis.AsyncRedisSaver "
        f"{package_version(PLAINREDIS_PACKAGE)} from the URL (ttl {ttl} s)"
    )
    try:
        yield Contender(PLAINREDIS, saver, saver.client, prefix, description)
    finally:
        await saver.aclose()


def ratios(runs: Sequence[StepRun]) -> dict[str, float | None]:
    """ALMA's steps/s ÷ plainredis's, by mode; `None` where either has no figure."""
    rate = {(run.saver, run.mode): run.steps_per_s for run in runs}
    found: dict[str, float | None] = {}
    for mode in MODES:
        alma, plain = rate.get((ALMA, mode)), rate.get((PLAINREDIS, mode))
        found[mode] = alma / plain if alma is not None and plain is not None else None
    return found


async def time_contenders(
    contenders: Sequence[Contender], plan: Sequence[Step], options: Options
) -> list[StepRun]:
    """Both savers warmed up, then each mode on each saver in turn."""
    for contender in contenders:
        await warm_up(contender, plan, options)
    runs = []
    for mode in MODES:
        for contender in contenders:
            run = await measure(contender, mode, plan, options)
            if run is not None:
                runs.append(run)
    return runs


async def compare(options: Options, plan: Sequence[Step], url: str) -> tuple[Comparison, str]:
    """Time ALMA's saver and plainredis's on the same steps; the figures and Redis version.

    Each writes under a fresh prefix of its own on the same Redis (plainredis's keys are
    not in ALMA's layout, so neither can read or delete the other's), and deletes its
    threads at the end even when it failed.
    """
    settings = service_settings(url, f"alma-bench-{uuid.uuid4().hex[:12]}")
    ttl = settings.ttl_seconds
    plain_prefix = f"plainredis-bench-{uuid.uuid4().hex[:12]}"
    async with open_alma(settings) as alma, open_plainredis(url, plain_prefix, ttl) as plain:
        contenders = (alma, plain)
        version = await redis_version(alma.client)
        try:
            runs = await time_contenders(contenders, plan, options)
        finally:
            left = {contender.name: await clear(contender) for contender in contenders}
    comparison = Comparison(
        savers={c.name: f"{c.description}, prefix {c.prefix}" for c in contenders},
        ttl_seconds=ttl,
        run_steps=options.run_steps,
        runs=runs,
        ratios=ratios(runs),
        failures=[failure for contender in contenders for failure in contender.failures],
        left_behind_keys={name: len(keys) for name, keys in left.items()},
        left_behind_examples={name: keys[:LEFT_EXAMPLES] for name, keys in left.items()},
    )
    return comparison, version


# -- report ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Options:
    """The command line, parsed."""

    threads: int
    steps: int
    channels: int
    concurrency: int
    seed: int
    redis_url: str | None
    json_path: Path | None
    run_steps: int
    """Steps per graph run in the comparison; each run starts with `aget_tuple`."""
    parts: tuple[str, ...]
    """Which halves run: the operations on each saver, the comparison, or both."""


@dataclass(frozen=True, slots=True)
class Report:
    """Everything the benchmark measured, and under which conditions."""

    machine: dict[str, Any]
    redis: dict[str, Any]
    workload: dict[str, Any]
    operations: list[Figures]
    """Empty when only the comparison ran."""
    concurrency: list[Throughput]
    comparison: Comparison | None
    """`None` when only the operations ran."""


def machine() -> dict[str, Any]:
    """What the figures depend on: platform, interpreter, CPUs, load, library versions."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "load_average": [round(load, 2) for load in os.getloadavg()],
        "python": platform.python_version(),
        "langgraph": package_version("langgraph"),
        "langgraph_checkpoint": package_version("langgraph-checkpoint"),
        "redis_py": package_version("redis"),
    }


def workload(options: Options, plan: Sequence[Step]) -> dict[str, Any]:
    """The workload's sizes, and how large its biggest channel value gets."""
    last = plan[-1].values["messages"]
    _, data = JsonPlusSerializer().dumps_typed(last)
    return {
        "threads": options.threads,
        "steps": options.steps,
        "channels": options.channels,
        "concurrency": options.concurrency,
        "seed": options.seed,
        "list_repeats_per_thread": LIST_REPEATS,
        "last_messages": len(last),
        "last_messages_bytes": len(data),
        "mean_changed_channels": sum(len(s.changed) for s in plan) / len(plan),
    }


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def format_operations(report: Report) -> list[str]:
    """The table of each call on each saver, then a line per saver for the concurrent run."""
    work = report.workload
    lines = [
        f"{'saver':<17}{'operation':<20}{'count':>7}{'p50 ms':>11}{'p99 ms':>11}{'ops/s':>11}",
    ]
    lines += [
        f"{row.saver:<17}{row.operation:<20}{row.count:>7}{row.p50_ms:>11.4f}"
        f"{row.p99_ms:>11.4f}{row.ops_per_s:>11.1f}"
        for row in report.operations
    ]
    lines += ["", "ops/s above: calls per second of time inside the call, one call at a time.", ""]
    lines += [
        f"concurrent {run.saver}: {run.tasks} tasks x {work['steps']} steps, {run.ops} "
        f"put+get_tuple in {run.seconds:.3f} s = {run.ops_per_s:.1f} ops/s "
        f"(put p99 {run.put_p99_ms:.2f} ms, get_tuple p99 {run.get_tuple_p99_ms:.2f} ms)"
        for run in report.concurrency
    ]
    left = report.redis.get("left_behind_keys")
    lines.append(f"clean-up: {left} benchmark keys left in Redis under {report.redis['prefix']}")
    return lines


def _failed_in(comparison: Comparison, saver: str, mode: str) -> str:
    failed = [f.operation for f in comparison.failures if (f.saver, f.mode) == (saver, mode)]
    return f"FAILED in {failed[0]}" if failed else "not run"


def _step_rows(comparison: Comparison) -> list[str]:
    found = {(run.saver, run.mode): run for run in comparison.runs}
    lines = [
        f"{'saver':<12}{'mode':<12}{'tasks':>6}{'steps':>7}{'seconds':>10}{'steps/s':>10}"
        f"{'step p50 ms':>13}{'step p99 ms':>13}"
    ]
    for mode in MODES:
        for saver in COMPARED:
            run = found.get((saver, mode))
            if run is None:
                lines.append(f"{saver:<12}{mode:<12}  {_failed_in(comparison, saver, mode)}")
                continue
            lines.append(
                f"{saver:<12}{mode:<12}{run.tasks:>6}{run.steps:>7}{run.seconds:>10.3f}"
                f"{run.steps_per_s:>10.1f}{run.step_p50_ms:>13.4f}{run.step_p99_ms:>13.4f}"
            )
    return lines


def _ratio_line(comparison: Comparison) -> str:
    shown = [
        f"{mode} " + (f"{ratio:.2f}" if ratio is not None else "n/a (a saver failed)")
        for mode, ratio in comparison.ratios.items()
    ]
    return f"steps/s, {ALMA} ÷ {PLAINREDIS}: " + ", ".join(shown)


def _call_rows(comparison: Comparison) -> list[str]:
    lines = [f"{'saver':<12}{'mode':<12}{'operation':<20}{'count':>7}{'p50 ms':>11}{'p99 ms':>11}"]
    for run in comparison.runs:
        lines += [
            f"{run.saver:<12}{run.mode:<12}{row.operation:<20}{row.count:>7}"
            f"{row.p50_ms:>11.4f}{row.p99_ms:>11.4f}"
            for row in run.operations
        ]
    return lines


def _left_line(comparison: Comparison) -> str:
    shown = []
    for name, count in comparison.left_behind_keys.items():
        named = ", ".join(comparison.left_behind_examples[name])
        more = ", ..." if count > LEFT_EXAMPLES else ""
        shown.append(f"{name} {count} ({named}{more})" if count else f"{name} 0")
    return (
        "clean-up: keys left under each saver's prefix once it deleted its threads: "
        + "; ".join(shown)
        + " (then deleted by the benchmark)"
    )


def format_comparison(comparison: Comparison) -> list[str]:
    """The comparison: how each saver was built, steps/s, the ratio, each call, failures."""
    lines = [
        f"comparison on the same Redis: graph runs of {comparison.run_steps} steps, each run "
        "starting with aget_tuple(latest); a step is aput + aput_writes (1-2 writes)",
    ]
    lines += [f"  {name:<12}{how}" for name, how in comparison.savers.items()]
    lines += ["", *_step_rows(comparison), "", _ratio_line(comparison), ""]
    lines += [*_call_rows(comparison), ""]
    lines += [
        f"FAILED: {f.saver}, {f.mode}, {f.operation}: {f.error}" for f in comparison.failures
    ] or ["failures: none"]
    lines.append(_left_line(comparison))
    return lines


def format_report(report: Report) -> str:
    """The conditions, then the operations' table and the comparison, whichever ran."""
    load = " ".join(f"{value:.2f}" for value in report.machine["load_average"])
    work = report.workload
    lines = [
        f"machine: {report.machine['platform']}, {report.machine['cpus']} CPUs, "
        f"load {load}, Python {report.machine['python']}, langgraph "
        f"{report.machine['langgraph']}, redis-py {report.machine['redis_py']}",
        f"redis: {report.redis['version']}, {report.redis['where']}",
        f"workload: {work['threads']} threads x {work['steps']} steps, {work['channels']} "
        f"channels ({work['mean_changed_channels']:.1f} changed per step on average), "
        f"messages up to {work['last_messages']} ({work['last_messages_bytes'] / 1024:.1f} KiB "
        f"serialised), each thread listed {work['list_repeats_per_thread']} times, "
        f"seed {work['seed']}",
    ]
    if report.operations:
        lines += ["", *format_operations(report)]
    if report.comparison is not None:
        lines += ["", *format_comparison(report.comparison)]
    return "\n".join(lines)


async def run_operations(
    options: Options, plan: Sequence[Step], target: RedisTarget
) -> tuple[list[SaverResult], dict[str, Any]]:
    """Run the workload on `InMemorySaver`, then on `AsyncRedisSaver` at `target`."""
    in_memory = await bench_saver(IN_MEMORY, InMemorySaver(), plan, options)
    prefix = f"alma-bench-{uuid.uuid4().hex[:12]}"
    async with open_redis_saver(target.url, prefix) as saver:
        version = await redis_version(saver.client)
        on_redis = await bench_saver(REDIS, saver, plan, options)
    redis = {"version": version, "prefix": prefix, "left_behind_keys": on_redis.left_behind_keys}
    return [in_memory, on_redis], redis


async def run_benchmark(options: Options, target: RedisTarget) -> Report:
    """Run the halves `options.parts` names on the same workload and Redis."""
    plan = build_plan(steps=options.steps, channels=options.channels, seed=options.seed)
    results: list[SaverResult] = []
    redis: dict[str, Any] = {"where": target.where}
    if OPERATIONS_PART in options.parts:
        results, found = await run_operations(options, plan, target)
        redis.update(found)
    comparison = None
    if COMPARISON_PART in options.parts:
        comparison, redis["version"] = await compare(options, plan, target.url)
    return Report(
        machine=machine(),
        redis=redis,
        workload=workload(options, plan),
        operations=[row for result in results for row in result.rows],
        concurrency=[result.throughput for result in results],
        comparison=comparison,
    )


# -- command line ----------------------------------------------------------------------


def _bounded(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from exc
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    """The command line of `python -m loadtests.memory_bench`."""
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.memory_bench",
        description="Time put / put_writes / get_tuple / list of ALMA's Redis checkpointer "
        "and LangGraph's InMemorySaver on the same workload, then a graph run's steps on "
        "ALMA's saver and on langgraph-checkpoint-plainredis's side by side.",
    )
    parser.add_argument("--threads", type=_bounded(1, 1000), default=20, help="timed threads")
    parser.add_argument("--steps", type=_bounded(1, 500), default=50, help="checkpoints a thread")
    parser.add_argument(
        "--channels", type=_bounded(1, 100), default=10, help="channels, messages included"
    )
    parser.add_argument(
        "--concurrency", type=_bounded(1, 512), default=32, help="threads written at once"
    )
    parser.add_argument(
        "--run-steps",
        type=_bounded(1, 500),
        default=5,
        help="steps per graph run in the comparison; each run starts with aget_tuple",
    )
    parser.add_argument("--only", choices=PARTS, default=None, help="run one half; by default both")
    parser.add_argument(
        "--redis-url", default=None, help="Redis to use; by default a private redis-server"
    )
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="write figures")
    parser.add_argument("--seed", type=int, default=0, help="seeds the workload's content")
    return parser


def parse_options(argv: Sequence[str] | None = None) -> Options:
    """Parse the command line into `Options`."""
    args = build_parser().parse_args(argv)
    return Options(
        threads=args.threads,
        steps=args.steps,
        channels=args.channels,
        concurrency=args.concurrency,
        seed=args.seed,
        redis_url=args.redis_url,
        json_path=args.json,
        run_steps=args.run_steps,
        parts=PARTS if args.only is None else (args.only,),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print the tables, and write the JSON if asked; the exit status.

    A compared saver that failed still leaves a report, with the failure in it; the
    status is then 1, so a script running the benchmark notices.
    """
    options = parse_options(argv)
    try:
        with redis_target(options.redis_url) as target:
            report = asyncio.run(run_benchmark(options, target))
    except (BenchError, StartError) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    print(format_report(report))
    if options.json_path is not None:
        options.json_path.write_text(json.dumps(asdict(report), indent=2) + "\n")
    failures = report.comparison.failures if report.comparison is not None else []
    if failures:
        names = sorted({failure.saver for failure in failures})
        print(f"benchmark failed: {', '.join(names)} failed (see FAILED above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
