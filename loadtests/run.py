"""`alma loadtest SCENARIO`: start what a load run needs, run Locust headless, write a report.

A run starts a private `redis-server`, the OpenAI-compatible model simulator and the
server under test (`alma serve`, `langgraph dev`, or both one after the other on the same
graph, simulator and machine), drives it with the users of loadtests/locustfile.py, and
writes a report folder: Locust's CSV and HTML, `/metrics` before and after, the server's
CPU and memory every second, and a summary (Markdown and JSON).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx

from loadtests.processes import (
    Server,
    StartError,
    alma_server,
    langgraph_dev,
    model_simulator,
    provider_env,
)
from memory.bench import redis_target

ROOT = Path(__file__).resolve().parent.parent
LOCUSTFILE = Path(__file__).resolve().with_name("locustfile.py")


@dataclass(frozen=True)
class Scenario:
    """A named load: how many users, how fast they arrive, for how long, doing what."""

    name: str
    users: int
    spawn_rate: float
    duration: int
    """Seconds of load."""
    description: str
    classes: tuple[str, ...] = ("ChatUser", "SseUser")
    idle: int = 0
    """Idle WebSockets held open besides the active users."""
    think: tuple[float, float] = (1.0, 3.0)
    """Seconds a user waits between runs."""
    profile: str = "realistic"
    """The model simulator's latency profile."""


SCENARIOS = {
    s.name: s
    for s in (
        Scenario("smoke", users=4, spawn_rate=4, duration=8, think=(0.1, 0.3), profile="fast",
                 classes=("SmokeUser", "SseUser"),
                 description="seconds of light load: every kind of request once or more"),
        Scenario("steady", users=200, spawn_rate=20, duration=180,
                 description="200 users in conversation, arriving over 10 s"),
        Scenario("spike", users=500, spawn_rate=500, duration=120,
                 description="25 users, then 500 at once for half the run, then 25 again"),
        Scenario("soak", users=50, spawn_rate=5, duration=1800,
                 description="50 users for 30 minutes: does memory grow?"),
        Scenario("connections", users=1100, spawn_rate=100, duration=120, idle=1000,
                 classes=("IdleSocketUser", "ChatUser"),
                 description="1,000 idle WebSockets plus 100 users running answers"),
    )
}  # fmt: skip


@dataclass
class Resources:
    """The server's CPU and memory, sampled every second while the load runs."""

    samples: list[tuple[float, float, int]] = field(default_factory=list)
    """(seconds since start, CPU cores in use, RSS bytes)."""

    @property
    def peak_rss(self) -> int:
        """Largest resident memory seen."""
        return max((rss for _, _, rss in self.samples), default=0)

    @property
    def mean_cpu(self) -> float:
        """Average cores in use."""
        return sum(c for _, c, _ in self.samples) / len(self.samples) if self.samples else 0.0


@contextmanager
def sampling(server: Server, every: float = 1.0) -> Iterator[Resources]:
    """Sample `server` (with its workers) in a thread until the block ends."""
    resources = Resources()
    stop = threading.Event()

    def sample() -> None:
        started = time.monotonic()
        cpu_before, _ = server.usage()
        at_before = started
        while not stop.wait(every):
            now = time.monotonic()
            cpu, rss = server.usage()
            cores = (cpu - cpu_before) / (now - at_before) if now > at_before else 0.0
            resources.samples.append((round(now - started, 1), round(cores, 3), rss))
            cpu_before, at_before = cpu, now

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield resources
    finally:
        stop.set()
        thread.join(timeout=5)


@dataclass
class Summary:
    """One target's figures."""

    target: str
    scenario: str
    users: int
    duration_s: float
    runs: int
    runs_per_second: float
    failures: int
    ttft_p50_ms: float | None
    ttft_p95_ms: float | None
    ttft_p99_ms: float | None
    run_p99_ms: float | None
    peak_rss_mib: float
    mean_cpu_cores: float
    errors: dict[str, int]
    requests: list[dict[str, Any]]


def _number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def read_stats(folder: Path) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Locust's per-request rows and its failures by error."""
    rows = []
    with (folder / "locust_stats.csv").open() as f:
        for row in csv.DictReader(f):
            if row["Name"] == "Aggregated":
                continue
            rows.append({
                "type": row["Type"], "name": row["Name"],
                "count": int(row["Request Count"]), "failures": int(row["Failure Count"]),
                "p50_ms": _number(row["50%"]), "p95_ms": _number(row["95%"]),
                "p99_ms": _number(row["99%"]), "max_ms": _number(row["Max Response Time"]),
            })  # fmt: skip
    errors: dict[str, int] = {}
    failures = folder / "locust_failures.csv"
    if failures.exists():
        with failures.open() as f:
            for row in csv.DictReader(f):
                key = f"{row['Name']}: {row['Error']}"[:200]
                errors[key] = errors.get(key, 0) + int(row["Occurrences"])
    return rows, errors


def summarise(
    target: str, scenario: Scenario, folder: Path, resources: Resources, seconds: float
) -> Summary:
    """The figures of one target's run, from Locust's CSV and the resource samples."""
    rows, errors = read_stats(folder)

    def row(kind: str, name: str) -> dict[str, Any]:
        return next((r for r in rows if r["type"] == kind and r["name"] == name), {})

    ttft, run = row("WS", "time to first token"), row("WS", "full run")
    sse_run = row("SSE", "full run")
    runs = int(run.get("count", 0)) + int(sse_run.get("count", 0))
    return Summary(
        target=target,
        scenario=scenario.name,
        users=scenario.users,
        duration_s=round(seconds, 1),
        runs=runs,
        runs_per_second=round(runs / seconds, 2) if seconds else 0.0,
        failures=sum(r["failures"] for r in rows),
        ttft_p50_ms=ttft.get("p50_ms"),
        ttft_p95_ms=ttft.get("p95_ms"),
        ttft_p99_ms=ttft.get("p99_ms"),
        run_p99_ms=run.get("p99_ms"),
        peak_rss_mib=round(resources.peak_rss / 2**20, 1),
        mean_cpu_cores=round(resources.mean_cpu, 2),
        errors=errors,
        requests=rows,
    )


def scrape(server: Server, path: Path) -> None:
    """Save the server's `/metrics` (if it has them)."""
    try:
        response = httpx.get(f"{server.url}/metrics", timeout=10)
        path.write_text(response.text if response.status_code == 200 else "")
    except httpx.HTTPError as exc:
        path.write_text(f"# unavailable: {exc}\n")


def run_locust(scenario: Scenario, host: str, folder: Path) -> int:
    """Run Locust headless against `host`; its exit code (non-zero on any failure)."""
    env = {
        **os.environ,
        "ALMA_LOADTEST_SCENARIO": scenario.name,
        "ALMA_LOADTEST_IDLE": str(scenario.idle),
        "ALMA_LOADTEST_USERS": str(scenario.users),
        "ALMA_LOADTEST_DURATION": str(scenario.duration),
        "ALMA_LOADTEST_THINK_MIN": str(scenario.think[0]),
        "ALMA_LOADTEST_THINK_MAX": str(scenario.think[1]),
        "PYTHONPATH": str(ROOT),
    }
    command = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
        "--host", host, "--users", str(scenario.users), "--spawn-rate", str(scenario.spawn_rate),
        "--run-time", f"{scenario.duration}s", "--stop-timeout", "30",
        "--csv", str(folder / "locust"), "--html", str(folder / "locust.html"),
        "--only-summary", "--loglevel", "WARNING", *scenario.classes,
    ]  # fmt: skip
    with (folder / "locust.log").open("wb") as log:
        return subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT).returncode


_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^:()]+)(?::\d+)?\)$")
# py-spy names files by their last two path parts; these belong to LangGraph.
_LANGGRAPH_PARTS = frozenset({"pregel", "stream", "channels", "_internal", "graph", "func"})


def _package(file: str) -> str:
    head = file.split("/", 1)[0] if "/" in file else file.rsplit(".", 1)[0]
    return "langgraph" if head in _LANGGRAPH_PARTS else head


def where_time_goes(raw: Path, top: int = 15) -> str:
    """py-spy's collapsed stacks: time by package (own and with callees), top functions."""
    own: dict[str, int] = {}
    inside: dict[str, int] = {}
    functions: dict[str, int] = {}
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [m for frame in stack.split(";") if (m := _FRAME.match(frame))]
        if not frames:
            continue
        packages = [_package(m["file"]) for m in frames]
        own[packages[-1]] = own.get(packages[-1], 0) + count
        for package in set(packages):
            inside[package] = inside.get(package, 0) + count
        leaf = f"{frames[-1]['function']} ({frames[-1]['file']})"
        functions[leaf] = functions.get(leaf, 0) + count
    if not total:
        return "no samples"

    def share(count: int) -> str:
        return f"{100 * count / total:.1f}"

    lines = [f"{total} samples of the server's busy threads", "",
             "| package | self % | including callees % |", "|---|---|---|"]  # fmt: skip
    for package, count in sorted(own.items(), key=lambda item: -item[1])[:top]:
        lines.append(f"| {package} | {share(count)} | {share(inside.get(package, 0))} |")
    lines += ["", "| function (self time) | % |", "|---|---|"]
    for function, count in sorted(functions.items(), key=lambda item: -item[1])[:top]:
        lines.append(f"| `{function}` | {share(count)} |")
    return "\n".join(lines)


@contextmanager
def profiling(server: Server, seconds: int, folder: Path) -> Iterator[None]:
    """Sample the server's stacks with py-spy for `seconds` while the block runs."""
    if seconds <= 0:
        yield
        return
    raw = folder / "profile-raw.txt"
    command = ["py-spy", "record", "--pid", str(server.pid), "--duration", str(seconds),
               "--rate", "50", "--format", "raw", "-o", str(raw), "--nonblocking"]  # fmt: skip
    with (folder / "py-spy.log").open("wb") as log:
        spy = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            yield
        finally:
            spy.wait(timeout=seconds + 60)
    if raw.exists():
        (folder / "profile.md").write_text(where_time_goes(raw) + "\n")


def run_target(
    target: str,
    scenario: Scenario,
    redis_url: str,
    simulator: Server,
    folder: Path,
    workers: int,
    profile_seconds: int = 0,
) -> tuple[Summary, int]:
    """Start the server under test, load it, and summarise."""
    folder.mkdir(parents=True, exist_ok=True)
    server: AbstractContextManager[Server]
    if target == "alma":
        server = alma_server(redis_url, env=provider_env(simulator), workers=workers,
                             log=folder / "server.log")  # fmt: skip
    else:
        server = langgraph_dev(redis_url, env=provider_env(simulator), log=folder / "server.log",
                               jobs=max(scenario.users, 10))  # fmt: skip
    with server as started:
        scrape(started, folder / "metrics-before.txt")
        began = time.monotonic()
        with (
            sampling(started) as resources,
            profiling(started, min(profile_seconds, scenario.duration), folder),
        ):
            code = run_locust(scenario, started.url, folder)
        seconds = time.monotonic() - began
        scrape(started, folder / "metrics-after.txt")
    with (folder / "resources.csv").open("w") as f:
        f.write("seconds,cpu_cores,rss_bytes\n")
        f.writelines(f"{t},{c},{r}\n" for t, c, r in resources.samples)
    summary = summarise(target, scenario, folder, resources, min(seconds, scenario.duration))
    return summary, code


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f}"


def table(summaries: Sequence[Summary]) -> str:
    """The summaries side by side, as a Markdown table."""
    head = ("| target | users | runs/s | TTFT p50 / p95 / p99 ms | full run p99 ms | "
            "failures | peak RSS MiB | mean CPU cores |")  # fmt: skip
    lines = [head, "|---|---|---|---|---|---|---|---|"]
    for s in summaries:
        lines.append(
            f"| {s.target} | {s.users} | {s.runs_per_second} | {_ms(s.ttft_p50_ms)} / "
            f"{_ms(s.ttft_p95_ms)} / {_ms(s.ttft_p99_ms)} | {_ms(s.run_p99_ms)} | {s.failures} "
            f"| {s.peak_rss_mib} | {s.mean_cpu_cores} |"
        )
    return "\n".join(lines)


def report(folder: Path, scenario: Scenario, summaries: Sequence[Summary], workers: int) -> str:
    """Write summary.md and summary.json; the Markdown."""
    machine = f"{os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.machine()}"
    text = [
        f"# Load run: {scenario.name}",
        "",
        f"{scenario.description}; {scenario.duration} s; model simulator profile "
        f"`{scenario.profile}`; ALMA workers: {workers}; machine: {machine}.",
        "",
        table(summaries),
        "",
    ]
    for s in summaries:
        text += [f"## {s.target}: requests", "",
                 "| type | name | count | failures | p50 ms | p95 ms | p99 ms |",
                 "|---|---|---|---|---|---|---|"]  # fmt: skip
        for r in s.requests:
            text.append(
                f"| {r['type']} | {r['name']} | {r['count']} | {r['failures']} | "
                f"{_ms(r['p50_ms'])} | {_ms(r['p95_ms'])} | {_ms(r['p99_ms'])} |"
            )
        if s.errors:
            text += ["", "Errors:", ""] + [f"- {k} × {v}" for k, v in s.errors.items()]
        text.append("")
    markdown = "\n".join(text)
    (folder / "summary.md").write_text(markdown)
    (folder / "summary.json").write_text(
        json.dumps(
            {
                "scenario": asdict(scenario),
                "machine": machine,
                "summaries": [asdict(s) for s in summaries],
            },
            indent=2,
        )
        + "\n"  # fmt: skip
    )
    return markdown


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="alma loadtest", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--duration", type=int, help="seconds of load (default: the scenario's)")
    parser.add_argument("--users", type=int, help="active users (default: the scenario's)")
    parser.add_argument(
        "--target", choices=["alma", "langgraph-dev", "both"], default="alma",
        help="the server under test; `both` runs the same load on each, one after the other",
    )  # fmt: skip
    parser.add_argument("--workers", type=int, default=1, help="ALMA's uvicorn workers")
    parser.add_argument("--profile", help="model simulator profile (default: the scenario's)")
    parser.add_argument(
        "--py-spy", type=int, default=0, metavar="SECONDS",
        help="sample the server's stacks with py-spy for this long (profile.md: where time goes)",
    )  # fmt: skip
    parser.add_argument(
        "--out", type=Path, help="report folder (default: reports/<scenario>-<time>)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the scenario; 0 when every request succeeded."""
    args = _parser().parse_args(argv)
    scenario = SCENARIOS[args.scenario]
    if args.duration:
        scenario = replace(scenario, duration=args.duration)
    if args.users:
        scenario = replace(scenario, users=args.users + scenario.idle)
    if args.profile:
        scenario = replace(scenario, profile=args.profile)
    folder = args.out or ROOT / "reports" / f"{scenario.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    folder.mkdir(parents=True, exist_ok=True)
    targets = ["alma", "langgraph-dev"] if args.target == "both" else [args.target]
    if args.target != "alma":
        # `langgraph dev` has no `run.cancel`, and its `since` replays the event named:
        # a comparison runs only what both offer.
        common = {"ChatUser": "ConversationUser", "SmokeUser": "ConversationSmokeUser"}
        classes = tuple(common.get(c, c) for c in scenario.classes)
        scenario = replace(scenario, classes=classes)
    summaries, codes = [], []
    try:
        with (
            redis_target(None) as redis,
            model_simulator(scenario.profile, log=folder / "simulator.log") as simulator,
        ):
            for target in targets:
                print(f"… {scenario.name} against {target} for {scenario.duration} s",
                      file=sys.stderr, flush=True)  # fmt: skip
                summary, code = run_target(target, scenario, redis.url, simulator,
                                           folder / target, args.workers, args.py_spy)  # fmt: skip
                summaries.append(summary)
                codes.append(code)
    except StartError as exc:
        print(f"alma loadtest: {exc}", file=sys.stderr)
        return 2
    print(report(folder, scenario, summaries, args.workers))
    print(f"\nreport: {folder}", file=sys.stderr)
    return 0 if all(code == 0 for code in codes) and not any(s.failures for s in summaries) else 1


if __name__ == "__main__":
    sys.exit(main())
