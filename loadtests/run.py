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
import math
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
    raise_descriptor_limit,
    redis_target,
)
from server.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
LOCUSTFILE = Path(__file__).resolve().with_name("locustfile.py")
MARKS = "locust-marks.jsonl"
"""Where, in a target's folder, the locustfile notes when the load reached its steps."""


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
    settle: int = 0
    """Seconds the idle sockets are held alone once spawned, before the active users come."""
    hold: int = 0
    """Seconds of full load once every user is spawned (0: the load runs for `duration`)."""
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
    )
}  # fmt: skip

ACTIVE_USERS = 100
"""Users running answers beside the idle sockets of `connections`."""
IDLE_SPAWN_SECONDS = 40
"""About how long idle sockets take to connect, however many: spawned at 100 a second or
faster, so 10,000 connect in 40 s rather than 100."""
SETTLE_SECONDS = 10
FD_HEADROOM = 1024
"""Descriptors a process needs besides its users' sockets: Redis, logs, Python's own."""


def connections(
    idle: int, active: int = ACTIVE_USERS, *, ping: tuple[float, float], hold: int | None = None
) -> Scenario:
    """The `connections` load for `idle` sockets and `active` users, given the server's ping.

    By default the full load is held for two ping intervals and a ping timeout after the
    last user is spawned: a socket that left either of two pings unanswered would have
    been closed, and counted, before the load ends.
    """
    interval, timeout = ping
    rate = max(100, math.ceil(idle / IDLE_SPAWN_SECONDS))
    hold = math.ceil(2 * interval + timeout) + 10 if hold is None else hold
    spawning = math.ceil(idle / rate) + math.ceil(active / rate)
    return Scenario(
        "connections", users=idle + active, spawn_rate=rate, idle=idle, settle=SETTLE_SECONDS,
        hold=hold, duration=spawning + SETTLE_SECONDS + hold,
        classes=("IdleSocketUser", "ChatUser"),
        description=f"{idle:,} idle WebSockets, alone for {SETTLE_SECONDS} s once spawned, "
        f"then with {active} active user{'' if active == 1 else 's'} for {hold} s once all "
        "are spawned",
    )  # fmt: skip


SCENARIOS["connections"] = connections(1000, ping=(20.0, 20.0))


def server_ping() -> tuple[float, float]:
    """The ping interval and timeout the server under test will use (same environment)."""
    settings = Settings()
    return settings.ws_ping_interval, settings.ws_ping_timeout


def descriptors_needed(scenario: Scenario) -> int:
    """File descriptors the server, and Locust, each need for `scenario`'s users."""
    # Every user holds a socket at each end; an active user's run also holds one of
    # the server's connections to the model.
    return 2 * scenario.users - scenario.idle + FD_HEADROOM


@dataclass
class Resources:
    """The servers' CPU and memory (summed over them), sampled every second under load."""

    samples: list[tuple[float, float, int]] = field(default_factory=list)
    """(seconds since start, CPU cores in use, RSS bytes)."""
    websockets: list[tuple[float, int]] = field(default_factory=list)
    """(seconds since start, WebSockets open by the servers' own gauge), for ALMA."""
    epoch: float = 0.0
    """The wall-clock time (`time.time()`) of second 0."""
    rss_before: int | None = None
    """Resident memory at second 0, before any user connected."""

    def websockets_held(self, after: float, until: float) -> int | None:
        """The fewest WebSockets open at any sample between `after` and `until` seconds."""
        held = (open_ for at, open_ in self.websockets if after <= at <= until)
        return min(held, default=None)

    def last_reading(self, after: float, until: float) -> tuple[int, int] | None:
        """(RSS, WebSockets open) at the last second between `after` and `until` with both."""
        gauge = dict(self.websockets)
        both = [(rss, gauge[at]) for at, _, rss in self.samples
                if after <= at <= until and at in gauge]  # fmt: skip
        return both[-1] if both else None

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
        resources.epoch = time.time()
        cpu_before, resources.rss_before = usage(servers)
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


@dataclass(frozen=True)
class Marks:
    """When Locust's load reached its steps, in seconds on the samples' clock."""

    spawned: dict[int, float] = field(default_factory=dict)
    """Users running → when the ramp to that many first completed."""
    load: float | None = None
    """When the active users were let in beside the idle sockets (`connections`)."""
    end: float | None = None
    """When the load shape ended the load (`connections`)."""


def read_marks(path: Path, epoch: float) -> Marks:
    """The marks the locustfile wrote to `path` (JSON lines), `epoch` being second 0."""
    if not path.exists():
        return Marks()
    spawned: dict[int, float] = {}
    steps: dict[str, float] = {}
    for line in path.read_text().splitlines():
        mark = json.loads(line)
        at = round(float(mark["at"]) - epoch, 1)
        if mark["mark"] == "spawned":
            spawned.setdefault(int(mark["users"]), at)
        else:
            steps.setdefault(str(mark["mark"]), at)
    return Marks(spawned=spawned, load=steps.get("load"), end=steps.get("end"))


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
    """Over the time the active users ran (with idle sockets first: from when they came)."""
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
    """Fewest WebSockets open from when every user was spawned to the end of the load (the
    run's second half when the spawning was not marked): the idle ones must all be there."""
    websockets_held_window: tuple[float, float] | None = None
    """(from, until): the seconds over which `websockets_held` was taken."""
    idle_requested: int = 0
    rss_before_mib: float | None = None
    """The servers' resident memory just before the first user connected."""
    idle_alone_rss_mib: float | None = None
    """Their resident memory with the idle sockets open and no active user yet."""
    idle_alone_websockets: int | None = None
    """WebSockets open, by the gauge, at that same second."""
    idle_kib_each: float | None = None
    """Memory per idle connection: the growth from `rss_before_mib` to
    `idle_alone_rss_mib`, divided by `idle_alone_websockets`."""

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


def held_window(scenario: Scenario, marks: Marks, seconds: float) -> tuple[float, float]:
    """Where the fewest WebSockets open are counted: from every user spawned to the end.

    The run's second half when the spawning was not marked.
    """
    spawned = marks.spawned.get(scenario.users)
    if spawned is None:
        return seconds / 2, seconds
    return spawned, marks.end if marks.end is not None else seconds


def idle_alone(scenario: Scenario, marks: Marks, resources: Resources) -> tuple[int, int] | None:
    """(RSS, WebSockets open) in the last full second the idle sockets were open alone."""
    spawned = marks.spawned.get(scenario.idle)
    if not scenario.idle or spawned is None or marks.load is None:
        return None
    # A second short of the active users' arrival: the gauge is read just after the RSS,
    # and must not count an active user's socket against the idle ones' memory.
    return resources.last_reading(spawned, marks.load - 1.0)


def kib_each(before: int, after: int, connections: int) -> float | None:
    """KiB of resident memory each of `connections` added (None: there were none)."""
    return round((after - before) / connections / 1024, 1) if connections > 0 else None


def _mib(size: int | None) -> float | None:
    return None if size is None else round(size / 2**20, 1)


def summarise(
    target: str,
    scenario: Scenario,
    folder: Path,
    resources: Resources,
    seconds: float,
    *,
    marks: Marks | None = None,
    processes: int | None = None,
    runs_by_process: Sequence[int] = (),
    cpu_cores: Mapping[str, float] | None = None,
) -> Summary:
    """The figures of one target's run, from Locust's CSV, the samples and the CPU shares."""
    rows, errors = read_stats(folder)
    raised = read_exceptions(folder)
    marks = marks or Marks()
    window = held_window(scenario, marks, seconds)
    alone = idle_alone(scenario, marks, resources)
    before = resources.rss_before
    each = kib_each(before, alone[0], alone[1]) if alone and before is not None else None
    active_seconds = seconds
    if marks.load is not None and marks.end is not None:
        active_seconds = marks.end - marks.load

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
        runs_per_second=round(runs / active_seconds, 2) if active_seconds else 0.0,
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
        websockets_held=resources.websockets_held(*window),
        websockets_held_window=window,
        idle_requested=scenario.idle,
        rss_before_mib=_mib(before),
        idle_alone_rss_mib=_mib(alone[0]) if alone else None,
        idle_alone_websockets=alone[1] if alone else None,
        idle_kib_each=each,
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
        "ALMA_LOADTEST_SPAWN_RATE": str(scenario.spawn_rate),
        "ALMA_LOADTEST_SETTLE": str(scenario.settle),
        "ALMA_LOADTEST_HOLD": str(scenario.hold),
        "ALMA_LOADTEST_MARKS": str(folder / MARKS),
        "PYTHONPATH": str(ROOT),
    }
    command = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
        "--host", host, "--users", str(scenario.users), "--spawn-rate", str(scenario.spawn_rate),
        "--run-time", f"{scenario.duration}s", "--stop-timeout", "30",
        "--csv", str(folder / "locust"), "--html", str(folder / "locust.html"),
        "--only-summary", "--loglevel", "WARNING", *scenario.classes,
    ]  # fmt: skip
    (folder / MARKS).unlink(missing_ok=True)  # a reused report folder's marks are stale
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
    marks = read_marks(folder / MARKS, resources.epoch)
    # A shaped load ends when its shape says, which a slow spawn can push past `duration`.
    loaded = marks.end if marks.end is not None else min(seconds, scenario.duration)
    summary = summarise(target, scenario, folder, resources, loaded, marks=marks,
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


def _figure(value: float | None, unit: str = "") -> str:
    return "–" if value is None else f"{value:,}{unit}"


def idle_table(summaries: Sequence[Summary]) -> str:
    """What the idle sockets cost: how many were held, and the servers' memory with them."""
    lines = [
        "| target | idle sockets requested | open after spawning: fewest / peak | over seconds "
        "| RSS before the load | RSS with the idle sockets alone (open then) | peak RSS "
        "| memory per idle connection |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        window = s.websockets_held_window
        over = "–" if window is None else f"{window[0]:.0f}–{window[1]:.0f}"
        lines.append(
            f"| {s.label} | {s.idle_requested:,} | {_figure(s.websockets_held)} / "
            f"{_figure(s.websockets_peak)} | {over} | {_figure(s.rss_before_mib, ' MiB')} | "
            f"{_figure(s.idle_alone_rss_mib, ' MiB')} ({_figure(s.idle_alone_websockets)}) | "
            f"{s.peak_rss_mib:,} MiB | {_figure(s.idle_kib_each, ' KiB')} |"
        )
    return "\n".join(lines)


IDLE_NOTE = (
    "Memory per idle connection: the servers' RSS in the last full second the idle sockets "
    "were open alone, less their RSS just before the first user connected, divided by the "
    "WebSockets open (the servers' gauge) in that second. The fewest open is taken from when "
    "every user was spawned to the end of the load."
)


def report(
    folder: Path,
    scenario: Scenario,
    summaries: Sequence[Summary],
    workers: int,
    descriptors: int | None = None,
) -> str:
    """Write summary.md and summary.json; the Markdown."""
    machine = f"{os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.machine()}"
    limit = "" if descriptors is None else f"; open files allowed: {descriptors:,} per process"
    text = [
        f"# Load run: {scenario.name}",
        "",
        f"{scenario.description}; {scenario.duration} s; model simulator profile "
        f"`{scenario.profile}`; ALMA workers: {workers}; machine: {machine}{limit}.",
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
    if scenario.idle:
        text += ["## Idle connections", "", idle_table(summaries), "", IDLE_NOTE, ""]
    else:
        held = [s for s in summaries if s.websockets_peak is not None]
        figures = "; ".join(
            f"{s.label} peak {s.websockets_peak}, fewest after every user was spawned "
            f"{s.websockets_held}"
            for s in held
        )
        if held:
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
                "open_files_limit": descriptors,
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


def _count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        count = -1
    if count < 0:
        raise argparse.ArgumentTypeError(f"not a count: {text!r}")
    return count


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="alma loadtest", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument(
        "--duration", type=int,
        help="seconds of load (default: the scenario's); for `connections`, seconds of full "
             "load once every user is spawned (default: two server ping intervals and a ping "
             "timeout, and 10 s)",
    )  # fmt: skip
    parser.add_argument("--users", type=int, help="active users (default: the scenario's)")
    parser.add_argument(
        "--idle", type=_count, metavar="N",
        help=f"idle WebSockets beside the {ACTIVE_USERS} active users (`connections` only; "
             "default 1000)",
    )  # fmt: skip
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


def scenario_of(args: argparse.Namespace) -> Scenario:
    """The scenario named on the command line, with its options applied.

    Raises:
        ValueError: when an option does not apply to the scenario.
    """
    scenario = SCENARIOS[args.scenario]
    if scenario.name == "connections":
        idle = scenario.idle if args.idle is None else args.idle
        # Spawn rate and how long the load is held follow from the idle count and the
        # server's pings: planned anew rather than scaled.
        scenario = connections(idle, args.users or ACTIVE_USERS, ping=server_ping(),
                               hold=args.duration or None)  # fmt: skip
    elif args.idle is not None:
        raise ValueError("--idle is for the connections scenario")
    else:
        if args.duration:
            scenario = replace(scenario, duration=args.duration)
        if args.users:
            scenario = replace(scenario, users=args.users)
    if args.profile:
        scenario = replace(scenario, profile=args.profile)
    return scenario


def missing_idle(summary: Summary) -> str | None:
    """Why ALMA's own gauge does not show every idle socket held to the end (None: it does)."""
    if summary.target != "alma" or not summary.idle_requested:
        return None
    if summary.websockets_held is None:
        return "the server's WebSocket gauge was not read once every user was spawned"
    if summary.websockets_held < summary.idle_requested:
        return (f"the server had as few as {summary.websockets_held:,} WebSockets open after "
                f"spawning, fewer than the {summary.idle_requested:,} idle ones")  # fmt: skip
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the scenario; 0 when every request succeeded and every idle socket was held."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.processes and args.target != "alma":
        parser.error("--processes runs ALMA only; leave out --target")
    try:
        scenario = scenario_of(args)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        descriptors = raise_descriptor_limit(descriptors_needed(scenario))
    except StartError as exc:
        print(f"alma loadtest: {exc}", file=sys.stderr)
        return 2
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
    print(report(folder, scenario, summaries, args.workers, descriptors))
    print(f"\nreport: {folder}", file=sys.stderr)
    missing = [f"{s.label}: {reason}" for s in summaries if (reason := missing_idle(s))]
    for reason in missing:
        print(f"alma loadtest: {reason}", file=sys.stderr)
    failed = any(code != 0 for code in codes) or any(s.failures for s in summaries)
    return 1 if failed or missing else 0


if __name__ == "__main__":
    sys.exit(main())
