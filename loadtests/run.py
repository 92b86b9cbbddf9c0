"""`alma loadtest SCENARIO`: start what a load run needs, run Locust headless, write a report.

A run starts a private `redis-server`, the OpenAI-compatible model simulator and the
server under test (`alma serve`, `langgraph dev`, or both one after the other on the same
graph, simulator and machine; or 1, 2, 4 … ALMA processes behind nginx, one count after
the other), drives it with the users of loadtests/locustfile.py, and writes a report
folder: Locust's CSV and HTML, `/metrics` before and after, the server's CPU and memory
every second, the CPU of everything else on the machine, and a summary (Markdown and JSON).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import psutil
import redis
from prometheus_client.parser import text_string_to_metric_families

from loadtests.balancer import alma_behind_nginx
from loadtests.processes import (
    Server,
    StartError,
    alma_server,
    langgraph_dev,
    model_simulator,
    provider_env,
    redis_target,
)

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
    """The servers' CPU and memory (summed over them), sampled every second under load."""

    samples: list[tuple[float, float, int]] = field(default_factory=list)
    """(seconds since start, CPU cores in use, RSS bytes)."""
    websockets: list[tuple[float, int]] = field(default_factory=list)
    """(seconds since start, WebSockets open by the servers' own gauge), for ALMA."""

    def websockets_held(self, after: float, until: float) -> int | None:
        """The fewest WebSockets open at any sample between `after` and `until` seconds."""
        held = (open_ for at, open_ in self.websockets if after <= at <= until)
        return min(held, default=None)

    @property
    def peak_rss(self) -> int:
        """Largest resident memory seen."""
        return max((rss for _, _, rss in self.samples), default=0)

    @property
    def mean_cpu(self) -> float:
        """Average cores in use."""
        return sum(c for _, c, _ in self.samples) / len(self.samples) if self.samples else 0.0


def open_websockets(servers: Sequence[Server]) -> int | None:
    """WebSockets open now, summed over `servers`, by their `/metrics` (None: unreadable)."""
    total = 0
    for server in servers:
        try:
            text = httpx.get(f"{server.url}/metrics", timeout=2).text
            families = {f.name: f for f in text_string_to_metric_families(text)}
        except (httpx.HTTPError, ValueError):
            return None
        gauge = families.get("alma_websocket_connections")
        if gauge is None:
            return None
        total += int(sum(sample.value for sample in gauge.samples))
    return total


def usage(servers: Sequence[Server]) -> tuple[float, int]:
    """CPU seconds used so far and resident memory now, summed over `servers`."""
    each = [server.usage() for server in servers]
    return sum(cpu for cpu, _ in each), sum(rss for _, rss in each)


@contextmanager
def sampling(servers: Sequence[Server], every: float = 1.0) -> Iterator[Resources]:
    """Sample `servers` (with their workers) in a thread until the block ends."""
    resources = Resources()
    stop = threading.Event()

    def sample() -> None:
        started = time.monotonic()
        cpu_before, _ = usage(servers)
        at_before = started
        while not stop.wait(every):
            now = time.monotonic()
            cpu, rss = usage(servers)
            cores = (cpu - cpu_before) / (now - at_before) if now > at_before else 0.0
            resources.samples.append((round(now - started, 1), round(cores, 3), rss))
            cpu_before, at_before = cpu, now
            if (open_ := open_websockets(servers)) is not None:
                resources.websockets.append((round(now - started, 1), open_))

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield resources
    finally:
        stop.set()
        thread.join(timeout=5)


def machine_cpu() -> float:
    """CPU seconds the whole machine has been busy, all cores together."""
    idle = {"idle", "iowait", "steal", "guest", "guest_nice"}  # guest time is in user's too
    times: dict[str, float] = psutil.cpu_times()._asdict()
    return sum(seconds for kind, seconds in times.items() if kind not in idle)


def finished_children_cpu() -> float:
    """CPU seconds of this process's children that have exited and been waited for."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return children.ru_utime + children.ru_stime


def redis_cpu(url: str) -> Callable[[], float]:
    """A clock of the CPU seconds the Redis at `url` has used."""

    def clock() -> float:
        with redis.Redis.from_url(url) as client:
            info = client.info("cpu")
        return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])

    return clock


@contextmanager
def cpu_shares(clocks: Mapping[str, Callable[[], float]]) -> Iterator[dict[str, float]]:
    """Mean cores each clock's owner used while the block ran (filled in as it ends)."""
    shares: dict[str, float] = {}
    before = {name: clock() for name, clock in clocks.items()}
    began = time.monotonic()
    try:
        yield shares
    finally:
        seconds = time.monotonic() - began
        for name, clock in clocks.items():
            shares[name] = round((clock() - before[name]) / seconds, 2)


def label(target: str, processes: int | None) -> str:
    """How a report names a target: `alma`, or `alma ×2 via nginx`."""
    return target if processes is None else f"{target} ×{processes} via nginx"


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
    run_p50_ms: float | None
    run_p95_ms: float | None
    run_p99_ms: float | None
    peak_rss_mib: float
    """The peak of the servers' summed resident memory."""
    mean_cpu_cores: float
    """The servers' CPU, summed."""
    errors: dict[str, int]
    requests: list[dict[str, Any]]
    processes: int | None = None
    """How many ALMA processes served behind nginx; `None` when Locust spoke to one directly."""
    runs_by_process: list[int] = field(default_factory=list)
    """Runs started on each process (from its `/metrics`)."""
    cpu_cores: dict[str, float] = field(default_factory=dict)
    """Mean cores used by the rest of the machine: nginx, simulator, Redis, Locust, all."""
    websockets_peak: int | None = None
    """Most WebSockets the servers had open at once (their gauge; None: not ALMA)."""
    websockets_held: int | None = None
    """Fewest WebSockets open in the run's second half: the idle ones must all be there."""

    @property
    def label(self) -> str:
        """The target's name in tables."""
        return label(self.target, self.processes)


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
    errors = _tally(
        folder / "locust_failures.csv", lambda row: f"{row['Name']}: {row['Error']}", "Occurrences"
    )
    return rows, errors


def read_exceptions(folder: Path) -> dict[str, int]:
    """What Locust's users raised outside any request (a broken pipe, a bug), by message."""
    return _tally(
        folder / "locust_exceptions.csv", lambda row: f"exception: {row['Message']}", "Count"
    )


def _tally(path: Path, key: Callable[[dict[str, str]], str], count: str) -> dict[str, int]:
    """A Locust CSV's rows added up by `key` (cut to 200 characters); empty if missing."""
    totals: dict[str, int] = {}
    if path.exists():
        with path.open() as f:
            for row in csv.DictReader(f):
                name = key(row)[:200]
                totals[name] = totals.get(name, 0) + int(row[count])
    return totals


def summarise(
    target: str,
    scenario: Scenario,
    folder: Path,
    resources: Resources,
    seconds: float,
    *,
    processes: int | None = None,
    runs_by_process: Sequence[int] = (),
    cpu_cores: Mapping[str, float] | None = None,
) -> Summary:
    """The figures of one target's run, from Locust's CSV, the samples and the CPU shares."""
    rows, errors = read_stats(folder)
    raised = read_exceptions(folder)

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
        # A user that raised lost whatever it was doing: it counts as a failure too.
        failures=sum(r["failures"] for r in rows) + sum(raised.values()),
        ttft_p50_ms=ttft.get("p50_ms"),
        ttft_p95_ms=ttft.get("p95_ms"),
        ttft_p99_ms=ttft.get("p99_ms"),
        run_p50_ms=run.get("p50_ms"),
        run_p95_ms=run.get("p95_ms"),
        run_p99_ms=run.get("p99_ms"),
        peak_rss_mib=round(resources.peak_rss / 2**20, 1),
        websockets_peak=max((n for _, n in resources.websockets), default=None),
        websockets_held=resources.websockets_held(after=seconds / 2, until=seconds),
        mean_cpu_cores=round(resources.mean_cpu, 2),
        errors={**errors, **raised},
        requests=rows,
        processes=processes,
        runs_by_process=list(runs_by_process),
        cpu_cores=dict(cpu_cores or {}),
    )


def scrape(server: Server, path: Path) -> None:
    """Save the server's `/metrics` (if it has them)."""
    try:
        response = httpx.get(f"{server.url}/metrics", timeout=10)
        path.write_text(response.text if response.status_code == 200 else "")
    except httpx.HTTPError as exc:
        path.write_text(f"# unavailable: {exc}\n")


def counter(path: Path, name: str) -> float:
    """The total of counter `name` in a saved `/metrics` (0 when it has none)."""
    total = 0.0
    for family in text_string_to_metric_families(path.read_text()):
        total += sum(s.value for s in family.samples if s.name == name)
    return total


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


def places(folder: Path, processes: int | None) -> list[Path]:
    """Where each server's log and `/metrics` go: `folder`, or `folder/process-N` behind nginx."""
    if processes is None:
        return [folder]
    return [folder / f"process-{n}" for n in range(1, processes + 1)]


@contextmanager
def under_test(
    target: str, redis_url: str, *, env: Mapping[str, str], folder: Path, workers: int,
    processes: int | None, jobs: int,
) -> Iterator[tuple[Server, list[Server]]]:  # fmt: skip
    """Start the server(s) under test; (where Locust sends the load, the servers).

    With `processes`, that many ALMA processes behind nginx; `jobs` is for `langgraph dev`.
    """
    logs = [home / "server.log" for home in places(folder, processes)]
    if processes is not None:
        with alma_behind_nginx(redis_url, logs=logs, directory=folder / "nginx", env=env,
                               workers=workers) as (balancer, servers):  # fmt: skip
            yield balancer, servers
        return
    server: AbstractContextManager[Server]
    if target == "alma":
        server = alma_server(redis_url, env=env, workers=workers, log=logs[0])
    else:
        server = langgraph_dev(redis_url, env=env, log=logs[0], jobs=jobs)
    with server as started:
        yield started, [started]


def runs_started(folder: Path) -> int:
    """Runs an ALMA process started under load, from its `/metrics` before and after."""
    name = "alma_runs_started_total"
    after = counter(folder / "metrics-after.txt", name)
    return round(after - counter(folder / "metrics-before.txt", name))


def run_target(
    target: str,
    scenario: Scenario,
    redis_url: str,
    simulator: Server,
    folder: Path,
    workers: int,
    profile_seconds: int = 0,
    processes: int | None = None,
) -> tuple[Summary, int]:
    """Start the server under test, load it, and summarise.

    With `processes`, that many ALMA processes serve behind nginx (py-spy samples the
    first); without, Locust speaks to the one server directly.
    """
    folder.mkdir(parents=True, exist_ok=True)
    homes = places(folder, processes)
    for home in homes:
        home.mkdir(exist_ok=True)
    with under_test(target, redis_url, env=provider_env(simulator), folder=folder,
                    workers=workers, processes=processes,
                    jobs=max(scenario.users, 10)) as (front, servers):  # fmt: skip
        for server, home in zip(servers, homes, strict=True):
            scrape(server, home / "metrics-before.txt")
        clocks = {"model simulator": lambda: simulator.usage()[0], "redis": redis_cpu(redis_url),
                  "Locust": finished_children_cpu, "machine": machine_cpu}  # fmt: skip
        if processes is not None:
            clocks["nginx"] = lambda: front.usage()[0]
        began = time.monotonic()
        with (
            sampling(servers) as resources,
            profiling(servers[0], min(profile_seconds, scenario.duration), folder),
            # Innermost: it must end once Locust has exited and been counted, and before
            # py-spy, another child, is waited for and counted too.
            cpu_shares(clocks) as cpu_cores,
        ):
            code = run_locust(scenario, front.url, folder)
        seconds = time.monotonic() - began
        for server, home in zip(servers, homes, strict=True):
            scrape(server, home / "metrics-after.txt")
    with (folder / "resources.csv").open("w") as f:
        f.write("seconds,cpu_cores,rss_bytes\n")
        f.writelines(f"{t},{c},{r}\n" for t, c, r in resources.samples)
    with (folder / "websockets.csv").open("w") as f:
        f.write("seconds,open\n")
        f.writelines(f"{t},{n}\n" for t, n in resources.websockets)
    runs_by_process = [runs_started(home) for home in homes] if target == "alma" else []
    summary = summarise(target, scenario, folder, resources, min(seconds, scenario.duration),
                        processes=processes, runs_by_process=runs_by_process,
                        cpu_cores=cpu_cores)  # fmt: skip
    return summary, code


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f}"


def table(summaries: Sequence[Summary]) -> str:
    """The summaries side by side, as a Markdown table; throughput also relative to the first."""
    head = (
        "| target | users | runs/s | × first | TTFT p50 / p95 / p99 ms | "
        "full run p50 / p95 / p99 ms | failures | peak RSS MiB | server CPU cores |"
    )
    lines = [head, "|---|---|---|---|---|---|---|---|---|"]
    first = summaries[0].runs_per_second if summaries else 0.0
    for s in summaries:
        ratio = f"{s.runs_per_second / first:.2f}" if first else "–"
        lines.append(
            f"| {s.label} | {s.users} | {s.runs_per_second} | {ratio} | {_ms(s.ttft_p50_ms)} / "
            f"{_ms(s.ttft_p95_ms)} / {_ms(s.ttft_p99_ms)} | {_ms(s.run_p50_ms)} / "
            f"{_ms(s.run_p95_ms)} / {_ms(s.run_p99_ms)} | {s.failures} | {s.peak_rss_mib} | "
            f"{s.mean_cpu_cores} |"
        )
    return "\n".join(lines)


CPU_COLUMNS = ("nginx", "model simulator", "redis", "Locust")


def cpu_table(summaries: Sequence[Summary]) -> str:
    """Where the machine's cores went during each load, and which process started the runs."""
    head = ("| target | servers | " + " | ".join(CPU_COLUMNS)
            + " | anything else | whole machine | runs started, by process |")  # fmt: skip
    lines = [head, "|---" * (len(CPU_COLUMNS) + 5) + "|"]
    for s in summaries:
        shares = " | ".join(str(s.cpu_cores.get(name, "–")) for name in CPU_COLUMNS)
        machine = s.cpu_cores.get("machine")
        named = s.mean_cpu_cores + sum(s.cpu_cores.get(name, 0.0) for name in CPU_COLUMNS)
        rest = "–" if machine is None else f"{max(machine - named, 0.0):.2f}"
        spread = " + ".join(map(str, s.runs_by_process)) or "–"
        lines.append(f"| {s.label} | {s.mean_cpu_cores} | {shares} | {rest} | "
                     f"{machine if machine is not None else '–'} | {spread} |")  # fmt: skip
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
    ]
    if any(s.processes is not None for s in summaries):
        text += [
            "ALMA processes behind nginx (round robin, no stickiness), sharing one Redis and "
            "one model simulator; server CPU and peak RSS are summed over the processes.",
            "",
        ]
    text += [
        table(summaries),
        "",
        "Mean CPU cores while the load ran (`anything else`: this runner and whatever else "
        "ran on the machine meanwhile):",
        "",
        cpu_table(summaries),
        "",
    ]
    held = [s for s in summaries if s.websockets_peak is not None]
    if held:
        figures = "; ".join(
            f"{s.label} peak {s.websockets_peak}, fewest in the run's second half "
            f"{s.websockets_held}"
            for s in held
        )
        text += [f"WebSockets open, by the server's own gauge each second: {figures}.", ""]
    for s in summaries:
        text += [f"## {s.label}: requests", "",
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


def _processes(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(part) for part in text.split(","))
    except ValueError:
        counts = ()
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"not a list of process counts: {text!r}")
    return counts


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="alma loadtest", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--duration", type=int, help="seconds of load (default: the scenario's)")
    parser.add_argument("--users", type=int, help="active users (default: the scenario's)")
    parser.add_argument("--idle", type=int, help="idle WebSockets (default: the scenario's)")
    parser.add_argument(
        "--target", choices=["alma", "langgraph-dev", "both"], default="alma",
        help="the server under test; `both` runs the same load on each, one after the other",
    )  # fmt: skip
    parser.add_argument("--workers", type=int, default=1, help="ALMA's uvicorn workers")
    parser.add_argument(
        "--processes", type=_processes, metavar="N,N,…",
        help="run the load once per count against that many ALMA processes behind nginx, "
             "sharing one Redis and the simulator (e.g. 1,2,4: how throughput scales)",
    )  # fmt: skip
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
    parser = _parser()
    args = parser.parse_args(argv)
    if args.processes and args.target != "alma":
        parser.error("--processes runs ALMA only; leave out --target")
    scenario = SCENARIOS[args.scenario]
    if args.duration:
        scenario = replace(scenario, duration=args.duration)
    if args.users or args.idle is not None:
        idle = scenario.idle if args.idle is None else args.idle
        active = args.users or scenario.users - scenario.idle
        scenario = replace(scenario, users=active + idle, idle=idle)
    if args.profile:
        scenario = replace(scenario, profile=args.profile)
    folder = args.out or ROOT / "reports" / f"{scenario.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    folder.mkdir(parents=True, exist_ok=True)
    targets = ["alma", "langgraph-dev"] if args.target == "both" else [args.target]
    runs: list[tuple[str, int | None]] = [(target, None) for target in targets]
    if args.processes:
        runs = [("alma", processes) for processes in args.processes]
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
            for target, processes in runs:
                name = label(target, processes)
                print(f"… {scenario.name} against {name} for {scenario.duration} s",
                      file=sys.stderr, flush=True)  # fmt: skip
                place = folder / (target if processes is None else f"{target}-{processes}")
                summary, code = run_target(target, scenario, redis.url, simulator, place,
                                           args.workers, args.py_spy, processes)  # fmt: skip
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
