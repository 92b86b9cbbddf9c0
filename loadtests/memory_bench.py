"""Benchmark the Redis checkpointer against LangGraph's `InMemorySaver` on one workload.

Both savers get the same threads: `--steps` checkpoints in the root namespace, each the
child of the one before, over `--channels` channels (a `messages` channel that grows by a
human/AI pair per step, plus small strings, dicts and ints that change now and then), and
a task's writes after every checkpoint. Each call is timed alone (p50, p99, ops/s), then
`--concurrency` tasks write a thread each at once (total ops/s for put + get_tuple).

Run it with `python -m loadtests.memory_bench`. Without `--redis-url` it starts a private
`redis-server` on a free loopback port and stops it at the end; with one, it writes only
under a fresh key prefix and deletes its threads when done.
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

from loadtests.processes import RedisTarget, StartError, redis_target
from memory.aio import AsyncRedisSaver

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
        yield saver


async def redis_version(saver: AsyncRedisSaver) -> str:
    """The `redis_version` the server reports."""
    info: dict[str, Any] = await saver.client.info("server")
    return str(info.get("redis_version", "unknown"))


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


@dataclass(frozen=True, slots=True)
class Report:
    """Everything the benchmark measured, and under which conditions."""

    machine: dict[str, Any]
    redis: dict[str, Any]
    workload: dict[str, Any]
    operations: list[Figures]
    concurrency: list[Throughput]


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


def format_report(report: Report) -> str:
    """The report as a plain table, then a line per saver for the concurrent run."""
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
        "",
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
    return "\n".join(lines)


async def run_benchmark(options: Options, target: RedisTarget) -> Report:
    """Run the workload on `InMemorySaver`, then on `AsyncRedisSaver` at `target`."""
    plan = build_plan(steps=options.steps, channels=options.channels, seed=options.seed)
    in_memory = await bench_saver(IN_MEMORY, InMemorySaver(), plan, options)
    prefix = f"alma-bench-{uuid.uuid4().hex[:12]}"
    async with open_redis_saver(target.url, prefix) as saver:
        version = await redis_version(saver)
        on_redis = await bench_saver(REDIS, saver, plan, options)
    return Report(
        machine=machine(),
        redis={
            "version": version,
            "where": target.where,
            "prefix": prefix,
            "left_behind_keys": on_redis.left_behind_keys,
        },
        workload=workload(options, plan),
        operations=in_memory.rows + on_redis.rows,
        concurrency=[in_memory.throughput, on_redis.throughput],
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
        "and LangGraph's InMemorySaver on the same workload.",
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
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print the table, and write the JSON if asked; the exit status."""
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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
