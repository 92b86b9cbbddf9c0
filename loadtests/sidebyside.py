"""What ALMA costs over the bare engine and over `langgraph dev`, measured in one run.

The same creative request ("Write a short poem about rivers": about 130 message events)
goes three ways on one machine, one after the other:

- the engine: the manager graph in this process, on LangGraph's `InMemorySaver`, with no
  server at all. Its CPU per run is the floor every server builds on.
- `alma serve`, with a private `redis-server`.
- `langgraph dev`, LangGraph's own server, on the same graph and the same Redis (its
  checkpointer is ALMA's, through langgraph.json), allowed as many runs at once as the
  largest concurrency so that its job limit does not throttle it.

Both servers are driven the same way, by the official `langgraph-sdk` over its v3 thread
stream on WebSocket: every run on a fresh thread, `concurrency` streams in flight, each
worker starting its next run as its last one ends (a closed loop). The model answers at
once (the simulated model at zero latency, or with `--provider openai` the real
`ChatOpenAI` path against the OpenAI-compatible simulator's `instant` profile), so the
time to first token is the service's own and the CPU is the service's own. Redis counts
its own commands and bytes, so what each server asks of it is measured, not estimated.

When idle, `langgraph dev`'s in-memory queue looks for new runs every half second, and
sees a run created during a look only at the next one: a lone run waits 0.5 to 1 s to
start. At concurrency 1 that wait is most of its time to first token and holds it near
one run a second, so no run starts at a concurrency after `--level-seconds` (each stream
still runs once: a burst of 200 runs all 200, which `langgraph dev` takes minutes over
on a small machine).

Run it with `python -m loadtests.sidebyside`; it starts and stops everything it needs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shlex
import sys
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any, Literal

import redis
from langchain_core._api import LangChainBetaWarning
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from graphs.manager import build_manager_graph
from loadtests.memory_bench import percentile
from loadtests.processes import (
    Server,
    StartError,
    alma_server,
    langgraph_dev,
    model_simulator,
    provider_env,
    redis_target,
)
from loadtests.stream_connections import ConnectionFigures, measure_connections
from nodes.models import ModelProvider, ModelSettings
from nodes.run_context import RunContext

# The engine is measured on LangGraph's v3 events on purpose, as ALMA streams them; the
# notice that they are experimental would interleave with the table.
warnings.filterwarnings(
    "ignore", message="The v3 streaming protocol", category=LangChainBetaWarning
)

Target = Literal["engine", "alma", "dev"]
Provider = Literal["simulated", "openai"]
TARGETS: tuple[Target, ...] = ("engine", "alma", "dev")
PROVIDERS: tuple[Provider, ...] = ("simulated", "openai")
SERVERS: tuple[Target, ...] = ("alma", "dev")
SERVER_NAMES: Mapping[Target, str] = {"alma": "alma serve", "dev": "langgraph dev"}

PROMPT = "Write a short poem about rivers"
ASSISTANT = "manager"
ZERO_LATENCY = {
    "ALMA_PROVIDER": "simulated",
    "ALMA_SIMULATED_TTFT": "0",
    "ALMA_SIMULATED_TOKENS_PER_SECOND": "0",
}
SIMULATOR_PROFILE = "instant"
"""The model simulator's profile with no latency at all, so ChatOpenAI's path is all we add."""
SINGLE_STREAM: Mapping[Provider, str] = {
    "simulated": "the model answers at once, so all of it is the service's",
    "openai": "the service plus ChatOpenAI's round trip to a simulator that answers at once",
}
DEV_MIN_JOBS = 50
ENGINE_WARM_UP_RUNS = 3
STALL_TIMEOUT_S = 60.0
"""Longest a streamed run may go without an event (its first, too) before it counts as
failed: a stream that lost its run waits forever, while a run that is merely slow, as
every run of a burst of 200 on a small machine is, keeps streaming."""
RUN_TIMEOUT_S = 600.0
"""Longest one streamed run may take in all."""
TERMINAL = frozenset({"completed", "failed", "interrupted"})
UPKEEP = frozenset(
    {"ping", "info", "config|resetstat", "subscribe", "client|setinfo", "hello", "monitor"}
)
"""Redis commands of a process's upkeep (health pings, the control channel, this
benchmark's own INFO), not of the runs."""


class SideBySideError(RuntimeError):
    """The benchmark could not run; the message says why."""


class RunFailed(RuntimeError):
    """A streamed run did not end with a completed answer."""


@dataclass(frozen=True, slots=True)
class EngineFigures:
    """CPU per run of the manager graph in this process, with no server."""

    provider: Provider
    runs: int
    astream_events_v3_cpu_ms: float
    """`graph.astream_events(..., version="v3")`, read to the end."""
    astream_cpu_ms: float
    """`graph.astream(..., stream_mode=["messages", "updates", "values"], subgraphs=True)`."""


@dataclass(frozen=True, slots=True)
class LevelFigures:
    """One server at one concurrency."""

    target: Target
    provider: Provider
    concurrency: int
    runs: int
    """Runs started (completed + failed)."""
    failures: int
    seconds: float
    runs_per_second: float
    """Completed runs per wall second."""
    ttft_p50_ms: float | None
    ttft_p99_ms: float | None
    server_cpu_ms_per_run: float
    client_cpu_ms_per_run: float
    """This process's CPU (the SDK clients): a saturated client would cap both servers."""
    simulator_cpu_ms_per_run: float | None
    """The OpenAI-compatible simulator's CPU, with `--provider openai`."""
    redis_commands_per_run: float
    redis_bytes_per_run: float
    errors: dict[str, int] = field(default_factory=dict)
    """Why runs failed, by message."""
    redis_commands_by_name: dict[str, float] = field(default_factory=dict)
    """`redis_commands_per_run` by command, most first."""
    server_processes: int = 1
    """Processes of the server (a supervisor and its workers) as the level ended."""


@dataclass(frozen=True, slots=True)
class Ratios:
    """ALMA against the engine and against `langgraph dev`, at one concurrency."""

    provider: Provider
    concurrency: int
    alma_cpu_over_engine_v3: float | None
    alma_over_dev_runs_per_second: float | None
    alma_over_dev_ttft_p50: float | None


@dataclass
class Report:
    """Everything one invocation measured, and where."""

    date: str
    machine: dict[str, Any]
    command: str
    prompt: str
    alma_workers: int = 1
    """Processes of `alma serve` (`--workers`); the server CPU per run is all of theirs."""
    engine: list[EngineFigures] = field(default_factory=list)
    servers: list[LevelFigures] = field(default_factory=list)
    ratios: list[Ratios] = field(default_factory=list)
    alma_single_stream_ttft_p50_ms: dict[Provider, float | None] = field(default_factory=dict)
    """Per provider: with a model that answers at once, the time to first token ALMA adds."""
    stream_connections: dict[Target, ConnectionFigures] = field(default_factory=dict)
    """Per server: what opening one event stream costs it (the same on either model)."""


# -- the engine, in process -------------------------------------------------------------


def model_settings(env: Mapping[str, str]) -> ModelSettings:
    """The model settings the servers read from `env`, for the engine in this process.

    Validated from `env` alone (not this process's environment), so the engine runs the
    model the servers were given.
    """
    fields = {
        name.removeprefix("ALMA_").lower() if name.startswith("ALMA_") else name: value
        for name, value in env.items()
    }
    return ModelSettings.model_validate(fields)


def user_input() -> dict[str, Any]:
    """The run's input: one user message, as a client sends it."""
    return {"messages": [{"role": "user", "content": PROMPT}]}


def new_thread() -> RunnableConfig:
    """A config on a thread never used before, so no run reads an earlier one's state."""
    return {"configurable": {"thread_id": str(uuid.uuid4())}}


async def _events_v3(graph: Any) -> None:
    stream = await graph.astream_events(
        user_input(), new_thread(), version="v3", context=RunContext()
    )
    async for _ in stream:
        pass


async def _astream(graph: Any) -> None:
    chunks = graph.astream(
        user_input(),
        new_thread(),
        context=RunContext(),
        stream_mode=["messages", "updates", "values"],
        subgraphs=True,
    )
    async for _ in chunks:
        pass


async def cpu_per_run(run: Callable[[Any], Awaitable[None]], graph: Any, runs: int) -> float:
    """Milliseconds of this process's CPU per run of `run`, after a warm-up."""
    for _ in range(ENGINE_WARM_UP_RUNS):
        await run(graph)
    began = time.process_time()
    for _ in range(runs):
        await run(graph)
    return (time.process_time() - began) * 1000 / runs


async def measure_engine(provider: Provider, env: Mapping[str, str], runs: int) -> EngineFigures:
    """The manager graph, compiled on `InMemorySaver`, timed both ways it can stream."""
    model = ModelProvider.from_settings(model_settings(env))
    try:
        graph = build_manager_graph(provider=model, checkpointer=InMemorySaver())
        return EngineFigures(
            provider=provider,
            runs=runs,
            astream_events_v3_cpu_ms=await cpu_per_run(_events_v3, graph, runs),
            astream_cpu_ms=await cpu_per_run(_astream, graph, runs),
        )
    finally:
        await model.aclose()


# -- the servers, over the SDK's thread stream --------------------------------------------


def _params(event: Mapping[str, Any]) -> Mapping[str, Any]:
    params = event.get("params")
    return params if isinstance(params, Mapping) else {}


def _data(event: Mapping[str, Any]) -> Mapping[str, Any]:
    data = _params(event).get("data")
    return data if isinstance(data, Mapping) else {}


def is_answer_token(event: Mapping[str, Any]) -> bool:
    """Whether `event` carries text of the answer: a message's content-block delta."""
    if event.get("method") != "messages":
        return False
    data = _data(event)
    delta = data.get("delta")
    return (
        data.get("event") == "content-block-delta"
        and isinstance(delta, Mapping)
        and bool(delta.get("text"))
    )


def run_end(event: Mapping[str, Any]) -> str | None:
    """How the run ended, if `event` is the root graph's terminal lifecycle event."""
    if event.get("method") != "lifecycle" or _params(event).get("namespace"):
        return None
    outcome = _data(event).get("event")
    return outcome if outcome in TERMINAL else None


async def one_run(client: LangGraphClient) -> float:
    """Seconds from just before `run.start` to the first answer token, on a fresh thread.

    The stream is read to the run's end.

    Raises:
        RunFailed: the run ended other than completed, without an answer token, or not
            within `RUN_TIMEOUT_S`, or went `STALL_TIMEOUT_S` without an event; or its
            stream failed or closed before it ended. The message says how far the run had
            got, which tells a slow server from a lost event.
    """
    loop = asyncio.get_running_loop()
    began = loop.time()
    deadline = asyncio.timeout(STALL_TIMEOUT_S)
    stage = "opening the thread stream"
    try:
        async with (
            deadline,
            client.threads.stream(assistant_id=ASSISTANT, transport="websocket") as thread,
        ):
            events = thread.subscribe(["lifecycle", "messages"])
            stage = "sending run.start"
            sent = time.perf_counter()
            await thread.run.start(input=user_input())
            stage = "run started, no event yet"
            first: float | None = None
            async for event in events:
                deadline.reschedule(min(began + RUN_TIMEOUT_S, loop.time() + STALL_TIMEOUT_S))
                stage = f"last event: {event.get('method')} {_data(event).get('event')}"
                if first is None and is_answer_token(event):
                    first = time.perf_counter()
                outcome = run_end(event)
                if outcome is None:
                    continue
                if outcome != "completed":
                    raise RunFailed(f"run ended {outcome}: {dict(_data(event))}")
                if first is None:
                    raise RunFailed("run completed without an answer token")
                return first - sent
    except RunFailed:
        raise
    except Exception as exc:
        reason = describe(exc)
        if deadline.expired() and loop.time() - began >= RUN_TIMEOUT_S:
            reason = f"no end within {RUN_TIMEOUT_S:.0f} s"
        elif deadline.expired():
            reason = f"no event for {STALL_TIMEOUT_S:.0f} s"
        raise RunFailed(f"{reason} ({stage})") from exc
    raise RunFailed(f"stream closed before the run ended ({stage})")


def describe(exc: BaseException) -> str:
    """A failure as one short line, so that equal failures add up."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:200]


@dataclass
class Tally:
    """What the runs of one concurrency left: first-token times and failures."""

    ttfts: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def runs(self) -> int:
        """Runs started."""
        return len(self.ttfts) + self.failures

    @property
    def failures(self) -> int:
        """Runs that failed, for whatever reason."""
        return sum(self.errors.values())


async def closed_loop(
    clients: Sequence[LangGraphClient], runs: int, seconds: float | None = None
) -> Tally:
    """`runs` runs, one stream per client in flight; each starts its next as its last ends.

    With `seconds`, no run starts after that many have passed, once every client has
    started one: the runs in flight finish and count.
    """
    tally = Tally()
    started = 0
    deadline = None if seconds is None else time.perf_counter() + seconds

    def more() -> bool:
        if started >= runs:
            return False
        return deadline is None or started < len(clients) or time.perf_counter() < deadline

    async def worker(client: LangGraphClient) -> None:
        nonlocal started
        while more():
            started += 1
            try:
                tally.ttfts.append(await one_run(client))
            except Exception as exc:  # every failure is counted and reported, none hidden
                tally.errors[describe(exc)] += 1

    await asyncio.gather(*(worker(client) for client in clients))
    return tally


@dataclass(frozen=True, slots=True)
class RedisCounters:
    """Redis's own totals: commands executed (upkeep left out) and bytes in and out."""

    by_command: dict[str, int]
    bytes: int

    @property
    def commands(self) -> int:
        """Every command executed."""
        return sum(self.by_command.values())

    def per_run_since(self, before: RedisCounters, runs: int) -> dict[str, float]:
        """Commands per run since `before`, by command, most first."""
        grown = {
            name: (calls - before.by_command.get(name, 0)) / runs
            for name, calls in self.by_command.items()
        }
        ranked = sorted(grown.items(), key=lambda item: -item[1])
        return {name: round(per_run, 2) for name, per_run in ranked if per_run > 0}

    @classmethod
    def read(cls, url: str) -> RedisCounters:
        """The counters now (one INFO: its own reply, a few KB, lands in the next read)."""
        with redis.Redis.from_url(url) as client:
            info = client.info("stats", "commandstats")
        by_command = {
            name.removeprefix("cmdstat_"): int(figures["calls"])
            for name, figures in info.items()
            if name.startswith("cmdstat_") and name.removeprefix("cmdstat_") not in UPKEEP
        }
        traffic = int(info["total_net_input_bytes"]) + int(info["total_net_output_bytes"])
        return cls(by_command=by_command, bytes=traffic)


def _cpu(server: Server | None) -> float | None:
    return server.usage()[0] if server is not None else None


async def measure_level(
    target: Target,
    provider: Provider,
    server: Server,
    redis_url: str,
    concurrency: int,
    runs: int,
    simulator: Server | None,
    seconds: float | None = None,
) -> LevelFigures:
    """`runs` runs against `server`, `concurrency` at once, with what each cost."""
    clients = [get_client(url=server.url) for _ in range(concurrency)]
    try:
        redis_before, server_before = RedisCounters.read(redis_url), server.usage()[0]
        simulator_before, client_before = _cpu(simulator), time.process_time()
        began = time.perf_counter()
        tally = await closed_loop(clients, runs, seconds)
        seconds = time.perf_counter() - began
        client_after, simulator_after = time.process_time(), _cpu(simulator)
        server_after, redis_after = server.usage()[0], RedisCounters.read(redis_url)
    finally:
        await asyncio.gather(*(client.aclose() for client in clients))
    ordered = sorted(round(ttft * 1e6) for ttft in tally.ttfts)  # microseconds
    started = tally.runs
    return LevelFigures(
        target=target,
        provider=provider,
        concurrency=concurrency,
        runs=started,
        failures=tally.failures,
        seconds=round(seconds, 3),
        runs_per_second=len(tally.ttfts) / seconds,
        ttft_p50_ms=percentile(ordered, 50) / 1000 if ordered else None,
        ttft_p99_ms=percentile(ordered, 99) / 1000 if ordered else None,
        server_cpu_ms_per_run=(server_after - server_before) * 1000 / started,
        client_cpu_ms_per_run=(client_after - client_before) * 1000 / started,
        simulator_cpu_ms_per_run=(
            (simulator_after - simulator_before) * 1000 / started
            if simulator_after is not None and simulator_before is not None
            else None
        ),
        redis_commands_per_run=(redis_after.commands - redis_before.commands) / started,
        redis_bytes_per_run=(redis_after.bytes - redis_before.bytes) / started,
        errors=dict(tally.errors),
        redis_commands_by_name=redis_after.per_run_since(redis_before, started),
        server_processes=len(server.family()),
    )


async def measure_server(
    target: Target,
    provider: Provider,
    server: Server,
    redis_url: str,
    args: argparse.Namespace,
    simulator: Server | None,
) -> list[LevelFigures]:
    """One warm-up run, then every concurrency in turn."""
    async with get_client(url=server.url) as client:
        try:
            # Imports, connection pools and Redis scripts load once, outside the figures.
            await one_run(client)
        except Exception as exc:
            raise SideBySideError(f"{SERVER_NAMES[target]}: warm-up run failed: {exc}") from exc
    levels = []
    for concurrency in args.concurrency:
        runs = max(args.runs, concurrency)
        budget = args.level_seconds or None
        limit = f" or {budget:.0f} s" if budget else ""
        progress(f"{SERVER_NAMES[target]} ({provider}): {runs} runs{limit}, {concurrency} at once")
        levels.append(
            await measure_level(
                target, provider, server, redis_url, concurrency, runs, simulator, budget
            )
        )
    return levels


# -- orchestration ------------------------------------------------------------------------


def progress(text: str) -> None:
    """Say what is running now, on stderr, so that stdout holds only the report."""
    print(f"… {text}", file=sys.stderr, flush=True)


@contextmanager
def model_for(provider: Provider) -> Iterator[tuple[dict[str, str], Server | None]]:
    """The settings that give every target the `provider` model, and its simulator if any."""
    if provider == "simulated":
        yield dict(ZERO_LATENCY), None
        return
    with model_simulator(SIMULATOR_PROFILE) as simulator:
        yield provider_env(simulator), simulator


def serving(
    target: Target, redis_url: str, env: Mapping[str, str], args: argparse.Namespace
) -> AbstractContextManager[Server]:
    """The server `target` names, on the model `env` gives, until the block ends."""
    if target == "alma":
        return alma_server(redis_url, env=env, workers=args.alma_workers)
    return langgraph_dev(redis_url, env=env, jobs=args.jobs)


def run_provider(
    provider: Provider, redis_url: str, args: argparse.Namespace, report: Report
) -> None:
    """Every target asked for, on `provider`'s model, one after the other."""
    with model_for(provider) as (env, simulator):
        if "engine" in args.targets:
            progress(f"engine in process ({provider}): {args.runs} runs each way")
            report.engine.append(asyncio.run(measure_engine(provider, env, args.runs)))
        for target in SERVERS:
            if target not in args.targets:
                continue
            progress(f"starting {SERVER_NAMES[target]} ({provider})")
            with serving(target, redis_url, env, args) as server:
                report.servers += asyncio.run(
                    measure_server(target, provider, server, redis_url, args, simulator)
                )
                if target not in report.stream_connections:
                    progress(f"{SERVER_NAMES[target]}: opening {args.runs} event streams")
                    report.stream_connections[target] = asyncio.run(
                        measure_connections(
                            server, lambda: RedisCounters.read(redis_url).commands, args.runs
                        )
                    )


def ratios(report: Report) -> None:
    """Fill in ALMA's ratios to the engine and to `langgraph dev` from the figures."""
    engine = {e.provider: e for e in report.engine}
    levels = {(s.target, s.provider, s.concurrency): s for s in report.servers}
    for (target, provider, concurrency), alma in levels.items():
        if target != "alma":
            continue
        dev = levels.get(("dev", provider, concurrency))
        bare = engine.get(provider)
        report.ratios.append(
            Ratios(
                provider=provider,
                concurrency=concurrency,
                alma_cpu_over_engine_v3=_ratio(
                    alma.server_cpu_ms_per_run, bare.astream_events_v3_cpu_ms if bare else None
                ),
                alma_over_dev_runs_per_second=_ratio(
                    alma.runs_per_second, dev.runs_per_second if dev else None
                ),
                alma_over_dev_ttft_p50=_ratio(alma.ttft_p50_ms, dev.ttft_p50_ms if dev else None),
            )
        )
        if concurrency == 1:
            report.alma_single_stream_ttft_p50_ms[provider] = alma.ttft_p50_ms


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


# -- the report -----------------------------------------------------------------------


def _number(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}×"


def format_engine(figures: Sequence[EngineFigures]) -> list[str]:
    """The engine's rows."""
    lines = [
        "engine in process (manager graph on InMemorySaver, no server): CPU ms per run",
        f"  {'provider':<10}  {'runs':>5}  {'astream_events(v3)':>18}  "
        f"{'astream(messages,updates,values)':>32}",
    ]
    for e in figures:
        lines.append(
            f"  {e.provider:<10}  {e.runs:>5}  {e.astream_events_v3_cpu_ms:>18.2f}  "
            f"{e.astream_cpu_ms:>32.2f}"
        )
    return lines


def format_servers(levels: Sequence[LevelFigures], alma_workers: int = 1) -> list[str]:
    """The servers' rows: one per server, provider and concurrency."""
    processes = "one process" if alma_workers == 1 else f"{alma_workers} worker processes"
    lines = [
        "servers, each run a fresh thread over langgraph-sdk's v3 thread stream (WebSocket),"
        " closed loop;",
        f"alma serve runs {processes} (server CPU is all of theirs); langgraph dev runs one;",
        "TTFT from just before run.start to the first answer token at the client:",
        f"  {'provider':<10}  {'server':<13}  {'conc':>4}  {'runs':>5}  {'fail':>4}  "
        f"{'runs/s':>7}  {'TTFT p50':>8}  {'p99 ms':>7}  {'server CPU':>10}  "
        f"{'client CPU':>10}  {'Redis cmds':>10}  {'Redis KB':>8}",
        f"  {'':<10}  {'':<13}  {'':>4}  {'':>5}  {'':>4}  {'':>7}  {'ms':>8}  {'':>7}  "
        f"{'ms/run':>10}  {'ms/run':>10}  {'per run':>10}  {'per run':>8}",
    ]
    for s in levels:
        lines.append(
            f"  {s.provider:<10}  {SERVER_NAMES[s.target]:<13}  {s.concurrency:>4}  "
            f"{s.runs:>5}  {s.failures:>4}  {s.runs_per_second:>7.1f}  "
            f"{_number(s.ttft_p50_ms):>8}  {_number(s.ttft_p99_ms):>7}  "
            f"{s.server_cpu_ms_per_run:>10.1f}  {s.client_cpu_ms_per_run:>10.1f}  "
            f"{s.redis_commands_per_run:>10.1f}  {s.redis_bytes_per_run / 1024:>8.1f}"
        )
    return lines


BREAKDOWN_COMMANDS = 8
"""Commands named in each server's breakdown; the rest are summed as `other`."""


def format_breakdown(levels: Sequence[LevelFigures]) -> list[str]:
    """Each level's Redis commands per run, by command: where a rising count comes from."""
    lines = ["Redis commands per run, by command (the most frequent; the rest as other):"]
    for s in levels:
        ranked = list(s.redis_commands_by_name.items())
        shown = [f"{name} {per_run:g}" for name, per_run in ranked[:BREAKDOWN_COMMANDS]]
        rest = sum(per_run for _, per_run in ranked[BREAKDOWN_COMMANDS:])
        if rest:
            shown.append(f"other {rest:.2f}")
        lines.append(
            f"  {s.provider:<10}  {SERVER_NAMES[s.target]:<13}  {s.concurrency:>4}  "
            + ", ".join(shown)
        )
    return lines


def format_ratios(report: Report) -> list[str]:
    """ALMA against the engine and against `langgraph dev`."""
    lines = [
        "ALMA's ratios (server CPU per run ÷ engine astream_events(v3) CPU per run; "
        "runs/s and TTFT p50 ÷ langgraph dev's):",
        f"  {'provider':<10}  {'conc':>4}  {'CPU ÷ engine':>12}  {'runs/s ÷ dev':>12}  "
        f"{'TTFT p50 ÷ dev':>14}",
    ]
    for r in report.ratios:
        lines.append(
            f"  {r.provider:<10}  {r.concurrency:>4}  {_times(r.alma_cpu_over_engine_v3):>12}  "
            f"{_times(r.alma_over_dev_runs_per_second):>12}  "
            f"{_times(r.alma_over_dev_ttft_p50):>14}"
        )
    for provider, ttft in report.alma_single_stream_ttft_p50_ms.items():
        lines.append(
            f"ALMA single-stream TTFT p50 ({provider}; {SINGLE_STREAM[provider]}): "
            f"{_number(ttft)} ms"
        )
    return lines


def format_connections(measured: Mapping[Target, ConnectionFigures]) -> list[str]:
    """Each server's cost of opening one event stream."""
    lines = [
        "opening one event stream (WebSocket, subscription.subscribe, close; the SDK opens "
        "one or two a run), one at a time:",
        f"  {'server':<13}  {'streams':>7}  {'p50 ms':>7}  {'server CPU ms':>13}  "
        f"{'Redis cmds':>10}",
    ]
    for target, c in measured.items():
        lines.append(
            f"  {SERVER_NAMES[target]:<13}  {c.connections:>7}  {c.p50_ms:>7.2f}  "
            f"{c.server_cpu_ms:>13.2f}  {c.redis_commands:>10.1f}"
        )
    return lines


def format_failures(levels: Sequence[LevelFigures]) -> list[str]:
    """Every failure, by server, concurrency and reason."""
    lines = []
    for s in levels:
        for reason, count in sorted(s.errors.items(), key=lambda item: -item[1]):
            lines.append(
                f"  {s.provider} {SERVER_NAMES[s.target]} at {s.concurrency}: {count} × {reason}"
            )
    return ["failures:", *lines] if lines else ["failures: none"]


def format_report(report: Report) -> str:
    """The whole report as plain text."""
    machine = report.machine
    lines = [
        f'side by side: "{report.prompt}" (a creative run), {machine["cpus"]} CPUs, '
        f"Python {machine['python']}, {report.date}",
    ]
    sections = []
    if report.engine:
        sections.append(format_engine(report.engine))
    if report.servers:
        sections.append(format_servers(report.servers, report.alma_workers))
        sections.append(format_breakdown(report.servers))
        sections.append(format_failures(report.servers))
    if report.stream_connections:
        sections.append(format_connections(report.stream_connections))
    if report.ratios:
        sections.append(format_ratios(report))
    for section in sections:
        lines += ["", *section]
    return "\n".join(lines)


def versions() -> dict[str, str]:
    """The versions of what is compared."""
    return {
        name: package_version(name)
        for name in ("langgraph", "langgraph-api", "langgraph-sdk", "langgraph-runtime-inmem")
    }


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.sidebyside", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--concurrency", type=_positive, nargs="+", default=[1, 50, 200],
        help="streams in flight at once, one measurement each",
    )  # fmt: skip
    parser.add_argument(
        "--runs", type=_positive, default=200,
        help="runs per concurrency (at least the concurrency), engine runs each way, and "
             "event streams opened on each server",
    )  # fmt: skip
    parser.add_argument(
        "--level-seconds", type=float, default=30.0, metavar="SECONDS",
        help="start no more runs at a concurrency after this long (those in flight finish; "
             "0: no limit): langgraph dev manages about one run a second alone",
    )  # fmt: skip
    parser.add_argument(
        "--provider", choices=[*PROVIDERS, "both"], default="both",
        help="the simulated model in process, ChatOpenAI against the simulator, or both",
    )  # fmt: skip
    parser.add_argument(
        "--targets", nargs="+", choices=TARGETS, default=list(TARGETS),
        help="what to measure: the engine in process, alma serve, langgraph dev",
    )  # fmt: skip
    parser.add_argument(
        "--alma-workers", type=_positive, default=1, metavar="N",
        help="worker processes of alma serve (its --workers): one process is the cost a "
             "run adds; more show what the machine serves when the service uses every core",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Measure, print the report, write the JSON if asked; 1 if anything failed."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(arguments)
    args.jobs = max(DEV_MIN_JOBS, *args.concurrency)  # never throttled by its own job limit
    providers = PROVIDERS if args.provider == "both" else (args.provider,)
    report = Report(
        date=datetime.now(UTC).isoformat(timespec="seconds"),
        machine={
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "versions": versions(),
        },
        command=shlex.join(["python", "-m", "loadtests.sidebyside", *arguments]),
        prompt=PROMPT,
        alma_workers=args.alma_workers,
    )
    try:
        with redis_target(None) as target:
            for provider in providers:
                run_provider(provider, target.url, args, report)
    except (SideBySideError, StartError) as exc:
        print(f"sidebyside: {exc}", file=sys.stderr)
        return 1
    ratios(report)
    print(format_report(report))
    if args.json:
        args.json.write_text(json.dumps(asdict(report), indent=2) + "\n")
    return 1 if any(level.failures for level in report.servers) else 0


if __name__ == "__main__":
    sys.exit(main())
