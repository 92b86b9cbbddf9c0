"""The service's added latency: from `run.start` to the first answer token at the client.

Every stream is a fresh thread over its own WebSocket, started at the same moment as the
others of its wave. The route is decided by the cue-word router (no model call), so the
only model call before the first token is the answer's own; its time to first token is
the simulated model's, fixed by `--model-ttft`, and is subtracted. What is left is ALMA:
the protocol, the run manager, the checkpoints and event log in Redis, the graph, the
fan-out — under the load of `concurrency` streams at once on this machine.

Run it with `python -m loadtests.latency`. Without `--url` it starts `alma serve` on a
free loopback port (simulated model, and a private `redis-server` unless `--redis-url`
names one) and stops both at the end.
"""

from __future__ import annotations

import argparse
import asyncio
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

from loadtests.memory_bench import percentile
from loadtests.processes import Server, StartError, alma_server, redis_target
from server.agent_protocol.client import open_thread
from server.engine.events import is_terminal

PROMPT = "Write a haiku about rivers"
ANSWER_NODES = frozenset({"compose"})


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


def format_table(figures: Sequence[Figures], model_ttft: float) -> str:
    """The figures as a plain-text table."""
    lines = [
        f"added latency: run.start → first answer token at the client, less the model's "
        f"{model_ttft * 1000:.0f} ms time to first token",
        f"{'concurrent':>10}  {'streams':>7}  {'p50 ms':>8}  {'p99 ms':>8}  {'max ms':>8}  "
        f"{'failed':>6}  {'server CPU ms/stream':>20}",
    ]
    for f in figures:
        cpu = "-" if f.server_cpu_ms_per_stream is None else f"{f.server_cpu_ms_per_stream:.1f}"
        lines.append(
            f"{f.concurrency:>10}  {f.streams:>7}  {f.p50_ms:>8.1f}  {f.p99_ms:>8.1f}  "
            f"{f.max_ms:>8.1f}  {f.failed:>6}  {cpu:>20}"
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
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures")
    return parser


async def _run(url: str, args: argparse.Namespace, server: Server | None = None) -> list[Figures]:
    # One warm-up stream: imports, connection pools and scripts load once.
    await one_stream(url, args.model_ttft)
    results = []
    for concurrency in args.concurrency:
        print(f"… {concurrency} concurrent", file=sys.stderr, flush=True)
        results.append(await measure(url, concurrency, args.streams, args.model_ttft, server))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: measure, print the table, optionally write JSON."""
    args = _parser().parse_args(argv)
    try:
        if args.url:
            figures = asyncio.run(_run(args.url, args))
        else:
            simulated = {
                "ALMA_PROVIDER": "simulated",
                "ALMA_SIMULATED_TTFT": str(args.model_ttft),
                "ALMA_SIMULATED_TOKENS_PER_SECOND": str(args.tokens_per_second),
            }
            with (
                redis_target(args.redis_url) as redis,
                alma_server(redis.url, env=simulated) as server,
            ):
                figures = asyncio.run(_run(server.url, args, server))
    except (LatencyError, StartError) as exc:
        print(f"latency: {exc}", file=sys.stderr)
        return 1
    print(format_table(figures, args.model_ttft))
    if args.json:
        report: dict[str, Any] = {
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            "model_ttft_s": args.model_ttft,
            "tokens_per_second": args.tokens_per_second,
            "figures": [asdict(f) for f in figures],
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
