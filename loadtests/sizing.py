"""How much Redis memory a conversation costs: `python -m loadtests.sizing`.

Starts a private Redis and one `alma serve` on the simulated model, holds `--threads`
conversations of `--turns` turns each (creative and analytical in turn) over the
WebSocket protocol, then weighs every key with `MEMORY USAGE` and prints the bytes per
thread and per turn for each kind of key. These figures size Redis (see the runbook in
the README): memory ≈ threads kept × bytes per thread, until thread TTL or the event
log cap (`ALMA_EVENT_LOG_MAXLEN`) bounds them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import redis

from loadtests.processes import alma_server, redis_target
from server.agent_protocol.client import open_thread

PROMPTS = (
    "Write a short poem about autumn rain",
    "Compare quicksort and mergesort for sorting 10M integers",
)
KINDS = (
    ("checkpoints", (":checkpoints:v2", ":order:v2", ":checkpoint-layout")),
    ("checkpoint run index", (":run:",)),
    ("event log", (":events",)),
    ("response cache", (":{cache}:",)),
    ("ownership", (":owner", ":owner:")),
    ("thread records", (":thread",)),
    ("run records", (":runs",)),
    ("limits", (":limits", ":connections:")),
)


@dataclass
class Sizing:
    """What the conversations left in Redis."""

    threads: int
    turns: int
    events: int
    bytes_by_kind: dict[str, int]
    used_memory_delta: int

    def table(self) -> str:
        """The figures as a Markdown table, by kind of key, largest first."""
        runs = self.threads * self.turns
        lines = [
            "| keys | total | per thread | per turn |",
            "|---|---:|---:|---:|",
        ]
        for kind, total in sorted(self.bytes_by_kind.items(), key=lambda item: -item[1]):
            lines.append(
                f"| {kind} | {_kib(total)} | {_kib(total / self.threads)} | {_kib(total / runs)} |"
            )
        lines.append(
            f"| all (Redis `used_memory` grew by) | {_kib(self.used_memory_delta)} | "
            f"{_kib(self.used_memory_delta / self.threads)} | "
            f"{_kib(self.used_memory_delta / runs)} |"
        )
        per_event = self.bytes_by_kind.get("event log", 0) / max(self.events, 1)
        lines.append("")
        lines.append(
            f"{self.events} events logged for {runs} runs ({self.events / runs:.0f} per run, "
            f"{per_event:.0f} bytes per event)."
        )
        return "\n".join(lines)


def _kib(value: float) -> str:
    return f"{value / 1024:,.1f} KiB"


def kind_of(key: str) -> str:
    """Which part of ALMA a key belongs to, from its name."""
    for kind, markers in KINDS:
        if any(marker in key for marker in markers):
            return kind
    return "other"


async def converse(url: str, threads: int, turns: int) -> None:
    """Hold the conversations, one turn after another."""
    for _ in range(threads):
        thread_id = f"size-{uuid.uuid4().hex[:10]}"
        async with open_thread(url, thread_id) as socket:
            await socket.subscribe("lifecycle")
            for turn in range(turns):
                await socket.start(PROMPTS[turn % len(PROMPTS)])
                got = await socket.until_terminal()
                if got[-1]["params"]["data"].get("event") != "completed":
                    raise RuntimeError(f"a run did not complete: {got[-1]}")


def weigh(client: redis.Redis, prefix: str) -> tuple[Counter[str], int]:
    """Bytes per kind of key under `prefix`, as Redis counts them, and events logged."""
    sizes: Counter[str] = Counter()
    events = 0
    for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        name = key.decode() if isinstance(key, bytes) else str(key)
        kind = kind_of(name)
        sizes[kind] += int(client.memory_usage(name, samples=0) or 0)
        if kind == "event log":
            # Each stream entry holds a batch of events, one field each.
            entries: Any = client.xrange(name)
            events += sum(len(fields) for _, fields in entries)
    return sizes, events


def measure(threads: int, turns: int, tokens_per_second: int, redis_url: str | None) -> Sizing:
    """Start Redis and ALMA, hold the conversations, weigh what they left."""
    prefix = f"size-{uuid.uuid4().hex[:6]}"
    env = {
        "ALMA_REDIS_PREFIX": prefix,
        "ALMA_PROVIDER": "simulated",
        "ALMA_SIMULATED_TTFT": "0",
        # Paced like a provider: how tokens group into events depends on it.
        "ALMA_SIMULATED_TOKENS_PER_SECOND": str(tokens_per_second),
        "ALMA_CACHE_TTL": "3600",
    }
    with redis_target(redis_url) as target, alma_server(target.url, env=env) as server:
        client = redis.Redis.from_url(target.url)
        before = int(client.info("memory")["used_memory"])
        asyncio.run(converse(server.url, threads, turns))
        after = int(client.info("memory")["used_memory"])
        sizes, events = weigh(client, prefix)
        client.close()
    return Sizing(threads, turns, events, dict(sizes), after - before)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m loadtests.sizing`: print the figures."""
    parser = argparse.ArgumentParser(prog="python -m loadtests.sizing", description=__doc__)
    parser.add_argument("--threads", type=int, default=10, help="conversations (default 10)")
    parser.add_argument("--turns", type=int, default=4, help="turns each (default 4)")
    parser.add_argument(
        "--tokens-per-second", type=int, default=400, help="simulated pace (default 400)"
    )
    parser.add_argument("--redis-url", help="Redis to use; by default a private redis-server")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    sizing = measure(args.threads, args.turns, args.tokens_per_second, args.redis_url)
    print(json.dumps(asdict(sizing), indent=2) if args.json else sizing.table())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
