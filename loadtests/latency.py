"""The service's added latency: from `run.start` to the first answer token at the client.

Every stream is a fresh thread over its own WebSocket, started at the same moment as the
others of its wave. The route is decided by the cue-word router (no model call), so the
only model call before the first token is the answer's own; its time to first token is
the simulated model's, fixed by `--model-ttft`, and is subtracted. What is left is ALMA
and LangGraph: the protocol, the run manager, the checkpoints and event log in Redis, the
graph, the fan-out — under the load of `concurrency` streams at once on this machine.

LangGraph's own share is measured first, in this process: the same graph and model on
`InMemorySaver`, streamed with `astream_events(version="v3")` as the service streams it,
one run at a time. ALMA's p50 less the engine's p50 is what the service itself adds.

Run it with `python -m loadtests.latency`. Without `--url` it starts `alma serve` on a
free loopback port (simulated model, and a private `redis-server` unless `--redis-url`
names one) and stops both at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver

from graphs.manager import build_manager_graph
from loadtests.memory_bench import percentile
from loadtests.processes import Server, StartError, alma_server, redis_target
from loadtests.sidebyside import is_answer_token, model_settings, new_thread
from nodes.models import ModelProvider
from nodes.run_context import RunContext
from server.agent_protocol.client import open_thread
from server.engine.events import is_terminal

PROMPT = "Write a haiku about rivers"
ANSWER_NODES = frozenset({"compose"})
ENGINE_RUNS = 100


class LatencyError(RuntimeError):
    """The benchmark could not run; the message says why."""


@dataclass(frozen=True, slots=True)
class Figures:
    """Added latency at one concurrency, in milliseconds."""

    concurrency: int
    streams: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    failed: int
    server_cpu_ms_per_stream: float | None
    """CPU the server process spent per stream (when the benchmark started it)."""
    beyond_engine_p50_ms: float | None = None
    """`p50_ms` less the engine's own p50: what the service adds to LangGraph."""


@dataclass(frozen=True, slots=True)
class EngineFigures:
    """LangGraph's own time to first token beyond the model's, in this process."""

    runs: int
    p50_ms: float
    p99_ms: float


async def engine_stream(graph: Any, model_ttft: float) -> float:
    """Seconds from asking the graph to stream to its first answer token, less the model's.

    Streamed as the service streams a run: v3 events, the cue-word router, its steps
    saved as the run ends.
    """
    began = time.perf_counter()
    stream = await graph.astream_events(
        {"messages": [{"role": "user", "content": PROMPT}]}, new_thread(), version="v3",
        context=RunContext(router="heuristic"), durability="exit",
    )  # fmt: skip
    first: float | None = None
    async for event in stream:
        data = event["params"].get("data")
        if isinstance(data, tuple):  # a message event's data comes with its metadata
            event = {**event, "params": {**event["params"], "data": data[0]}}
        if first is None and is_answer_token(event):
            first = time.perf_counter()
    if first is None:
        raise LatencyError("the engine's run streamed no answer token")
    return first - began - model_ttft


async def measure_engine(env: dict[str, str], model_ttft: float, runs: int) -> EngineFigures:
    """The engine's first-token figures over `runs` runs, one at a time, after a warm-up."""
    model = ModelProvider.from_settings(model_settings(env))
    try:
        graph = build_manager_graph(provider=model, checkpointer=InMemorySaver())
        await engine_stream(graph, model_ttft)
        ordered = sorted([round(await engine_stream(graph, model_ttft) * 1e6) for _ in range(runs)])
    finally:
        await model.aclose()
    return EngineFigures(
        runs=runs, p50_ms=percentile(ordered, 50) / 1000, p99_ms=percentile(ordered, 99) / 1000
    )


async def one_stream(url: str, model_ttft: float) -> float:
    """Seconds from `run.start` to the first answer token, less the model's own TTFT.

    The run is on a new thread; the stream is read to the end of the run.
    """
    async with open_thread(url, f"bench-{uuid.uuid4().hex}", max_queue=None) as client:
        await client.subscribe("lifecycle", "messages")
        sent = time.perf_counter()
        await client.start(PROMPT, context={"router": "heuristic"})
        first: float | None = None
        while True:
            event = await client.next_event(timeout=120)
            if event is None:
                raise LatencyError(f"stream closed: {client.close_code} {client.close_reason}")
            data = event["params"]["data"]
            if (
                first is None
                and event["method"] == "messages"
                and event["params"].get("node") in ANSWER_NODES
                and data.get("event") == "content-block-delta"
            ):
                first = time.perf_counter()
            if is_terminal(event):
                if data.get("event") != "completed" or first is None:
                    raise LatencyError(f"run ended without an answer: {data}")
                return first - sent - model_ttft


async def measure(
    url: str, concurrency: int, streams: int, model_ttft: float, server: Server | None = None
) -> Figures:
    """`streams` runs in waves of `concurrency` at once."""
    cpu_before = server.usage()[0] if server else None
    latencies: list[float] = []
    failed = 0
    for _ in range(max(1, streams // concurrency)):
        outcomes = await asyncio.gather(
            *(one_stream(url, model_ttft) for _ in range(concurrency)), return_exceptions=True
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                failed += 1
                print(f"  stream failed: {outcome!r}", file=sys.stderr)
            else:
                latencies.append(outcome)
    if not latencies:
        raise LatencyError(f"every stream failed at concurrency {concurrency}")
    ordered = sorted(round(value * 1e6) for value in latencies)  # microseconds
    cpu_after = server.usage()[0] if server else None
    cpu_per_stream = (
        (cpu_after - cpu_before) * 1000 / (len(latencies) + failed)
        if cpu_before is not None and cpu_after is not None
        else None
    )
    return Figures(
        concurrency=concurrency,
        streams=len(latencies),
        p50_ms=percentile(ordered, 50) / 1000,
        p99_ms=percentile(ordered, 99) / 1000,
        max_ms=ordered[-1] / 1000,
        failed=failed,
        server_cpu_ms_per_stream=cpu_per_stream,
    )


def format_table(figures: Sequence[Figures], model_ttft: float, engine: EngineFigures) -> str:
    """The figures as a plain-text table."""
    lines = [
        f"engine in process (LangGraph alone, the same graph and model, {engine.runs} runs): "
        f"first token {engine.p50_ms:.1f} ms p50, {engine.p99_ms:.1f} ms p99 beyond the model's",
        f"added latency: run.start → first answer token at the client, less the model's "
        f"{model_ttft * 1000:.0f} ms time to first token; 'ALMA p50' less the engine's p50",
        f"{'concurrent':>10}  {'streams':>7}  {'p50 ms':>8}  {'p99 ms':>8}  {'max ms':>8}  "
        f"{'failed':>6}  {'server CPU ms/stream':>20}  {'ALMA p50 ms':>11}",
    ]
    for f in figures:
        cpu = "-" if f.server_cpu_ms_per_stream is None else f"{f.server_cpu_ms_per_stream:.1f}"
        alma = "-" if f.beyond_engine_p50_ms is None else f"{f.beyond_engine_p50_ms:.1f}"
        lines.append(
            f"{f.concurrency:>10}  {f.streams:>7}  {f.p50_ms:>8.1f}  {f.p99_ms:>8.1f}  "
            f"{f.max_ms:>8.1f}  {f.failed:>6}  {cpu:>20}  {alma:>11}"
        )
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.latency", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--url", help="a running ALMA server (default: start one)")
    parser.add_argument("--redis-url", help="Redis for the started server (default: private)")
    parser.add_argument(
        "--concurrency", type=int, nargs="+", default=[1, 50, 200], help="streams at once"
    )
    parser.add_argument(
        "--streams", type=int, default=200, help="streams per concurrency (at least one wave)"
    )
    parser.add_argument(
        "--model-ttft",
        type=float,
        default=0.1,
        help="the simulated model's time to first token, seconds (with --url: the server's)",
    )
    parser.add_argument(
        "--tokens-per-second", type=float, default=80, help="the simulated model's pace"
    )
    parser.add_argument(
        "--engine-runs", type=int, default=ENGINE_RUNS,
        help="runs of the engine alone, in this process, for its share",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures")
    return parser


async def _run(
    url: str, args: argparse.Namespace, engine: EngineFigures, server: Server | None = None
) -> list[Figures]:
    # One warm-up stream: imports, connection pools and scripts load once.
    await one_stream(url, args.model_ttft)
    results = []
    for concurrency in args.concurrency:
        print(f"… {concurrency} concurrent", file=sys.stderr, flush=True)
        found = await measure(url, concurrency, args.streams, args.model_ttft, server)
        beyond = round(found.p50_ms - engine.p50_ms, 3)
        results.append(dataclasses.replace(found, beyond_engine_p50_ms=beyond))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: measure, print the table, optionally write JSON."""
    args = _parser().parse_args(argv)
    simulated = {
        "ALMA_PROVIDER": "simulated",
        "ALMA_SIMULATED_TTFT": str(args.model_ttft),
        "ALMA_SIMULATED_TOKENS_PER_SECOND": str(args.tokens_per_second),
    }
    try:
        # Alone, before any server runs: the engine's figure is a floor, not a contender.
        print("… the engine in process", file=sys.stderr, flush=True)
        engine = asyncio.run(measure_engine(simulated, args.model_ttft, args.engine_runs))
        if args.url:
            figures = asyncio.run(_run(args.url, args, engine))
        else:
            with (
                redis_target(args.redis_url) as redis,
                alma_server(redis.url, env=simulated) as server,
            ):
                figures = asyncio.run(_run(server.url, args, engine, server))
    except (LatencyError, StartError) as exc:
        print(f"latency: {exc}", file=sys.stderr)
        return 1
    print(format_table(figures, args.model_ttft, engine))
    if args.json:
        report: dict[str, Any] = {
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            "model_ttft_s": args.model_ttft,
            "tokens_per_second": args.tokens_per_second,
            "engine": asdict(engine),
            "figures": [asdict(f) for f in figures],
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
