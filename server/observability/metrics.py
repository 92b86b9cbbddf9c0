"""Prometheus metrics of the service, and the sampler of process resources.

With several uvicorn workers, `alma serve` points `PROMETHEUS_MULTIPROC_DIR` at a fresh
directory before the workers start; each worker then writes its figures there and any
worker's `/metrics` answers for all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import psutil
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST

# Seconds from tens of milliseconds (a cached answer) to minutes (a long analysis).
_SLOW = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300)
# Redis and checkpointer calls: tenths of a millisecond to a second.
_FAST = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)

RUNS_STARTED = Counter("alma_runs_started_total", "Runs started on this service.")
RUNS_FINISHED = Counter(
    "alma_runs_finished_total",
    "Runs ended, by route, outcome (completed, failed, cancelled) and error code.",
    ["route", "outcome", "code"],
)
RUNS_ACTIVE = Gauge("alma_runs_active", "Runs executing now.", multiprocess_mode="livesum")
TIME_TO_FIRST_TOKEN = Histogram(
    "alma_time_to_first_token_seconds",
    "From a run's start to its first streamed token, by route.",
    ["route"],
    buckets=_SLOW,
)
RUN_DURATION = Histogram(
    "alma_run_duration_seconds", "Whole runs, by route and outcome.", ["route", "outcome"],
    buckets=_SLOW,
)  # fmt: skip
NODE_DURATION = Histogram(
    "alma_node_duration_seconds", "Graph node executions, by node.", ["node"], buckets=_SLOW
)
MODEL_CALL_DURATION = Histogram(
    "alma_model_call_duration_seconds",
    "Model calls, by role, model and outcome (ok, error).",
    ["role", "model", "outcome"],
    buckets=_SLOW,
)
MODEL_TOKENS = Counter(
    "alma_model_tokens_total",
    "Model tokens, by kind (prompt, completion), role and model.",
    ["kind", "role", "model"],
)
TOKENS_PER_SECOND = Histogram(
    "alma_tokens_per_second",
    "Completion tokens per second delivered by a run, first token to last, by route.",
    ["route"],
    buckets=(1, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000),
)
COST = Counter("alma_cost_usd_total", "Estimated model cost in USD, by model.", ["model"])
CHECKPOINTER_DURATION = Histogram(
    "alma_checkpointer_seconds",
    "Checkpointer calls (put, put_writes, get_tuple, list…), by operation.",
    ["operation"],
    buckets=_FAST,
)
REDIS_ROUNDTRIP = Histogram(
    "alma_redis_roundtrip_seconds", "Redis PING round trips, sampled.", buckets=_FAST
)
REDIS_UP = Gauge(
    "alma_redis_up", "1 when the last Redis PING succeeded.", multiprocess_mode="livemin"
)
WEBSOCKETS_OPEN = Gauge(
    "alma_websocket_connections", "WebSocket connections open.", multiprocess_mode="livesum"
)
SSE_OPEN = Gauge("alma_sse_streams", "SSE streams open.", multiprocess_mode="livesum")
MESSAGES_SENT = Counter(
    "alma_messages_sent_total", "Protocol messages sent to clients, by transport.",
    ["transport"],
)  # fmt: skip
SLOW_CONSUMERS = Counter(
    "alma_slow_consumer_disconnects_total", "Connections closed for not reading their events."
)
RATE_LIMITED = Counter(
    "alma_rate_limit_refusals_total",
    "Requests refused by a limit (runs, tokens, connections).",
    ["limit"],
)
HTTP_REQUESTS = Counter(
    "alma_http_requests_total", "HTTP requests, by method, route and status.",
    ["method", "route", "status"],
)  # fmt: skip
HTTP_DURATION = Histogram(
    "alma_http_request_duration_seconds", "HTTP request handling, by method and route.",
    ["method", "route"], buckets=_SLOW,
)  # fmt: skip
CPU_SECONDS = Counter("alma_process_cpu_seconds_total", "CPU time used by the service.")
RESIDENT_MEMORY = Gauge(
    "alma_process_resident_memory_bytes", "Resident memory.", multiprocess_mode="livesum"
)
OPEN_FDS = Gauge("alma_process_open_fds", "Open file descriptors.", multiprocess_mode="livesum")
ASYNCIO_TASKS = Gauge("alma_asyncio_tasks", "asyncio tasks alive.", multiprocess_mode="livesum")
LOOP_LAG = Gauge(
    "alma_event_loop_lag_seconds",
    "How late the event loop woke a sampler, the worst process.",
    multiprocess_mode="livemax",
)


def _registry() -> CollectorRegistry:
    # In multiprocess mode every worker's files are read, so any worker answers for all.
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return registry
    return REGISTRY


def render() -> tuple[bytes, str]:
    """The metrics page: this process's, or every worker's in multiprocess mode."""
    return generate_latest(_registry()), CONTENT_TYPE


@dataclass(frozen=True)
class Reading:
    """The figures a live panel shows, read from the metrics at one moment."""

    at: float
    ttft_buckets: tuple[tuple[float, float], ...]
    """Cumulative count of first tokens at or under each bound, all routes."""
    finished: float
    active: float


def read_now() -> Reading:
    """Read the live figures from every worker's metrics."""
    buckets: dict[float, float] = {}
    finished = active = 0.0
    for family in _registry().collect():
        for sample in family.samples:
            if sample.name == "alma_time_to_first_token_seconds_bucket":
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
            elif sample.name == "alma_runs_finished_total":
                finished += sample.value
            elif sample.name == "alma_runs_active":
                active += sample.value
    return Reading(time.time(), tuple(sorted(buckets.items())), finished, active)


def quantile(q: float, buckets: tuple[tuple[float, float], ...]) -> float | None:
    """Prometheus's `histogram_quantile` over cumulative buckets; `None` with no data."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return lower
            share = (rank - below) / (count - below) if count > below else 1.0
            return lower + (bound - lower) * share
        lower, below = bound, count
    return lower


@dataclass
class RecentFigures:
    """Live figures over a sliding window, from readings the sampler keeps."""

    window: float = 300.0
    _readings: list[Reading] = field(default_factory=list)

    def keep(self, reading: Reading) -> None:
        """Remember a reading; forget those older than the window."""
        self._readings.append(reading)
        horizon = reading.at - self.window
        while len(self._readings) > 1 and self._readings[1].at <= horizon:
            self._readings.pop(0)

    def now(self) -> dict[str, float | None]:
        """Active runs, runs finished and p95 time to first token over the window."""
        current = read_now()
        start = self._readings[0] if self._readings else None
        if start is not None and current.at - start.at > self.window * 2:
            start = None  # the sampler stopped; compare with nothing rather than stale data
        base = dict(start.ttft_buckets) if start else {}
        recent = tuple(
            (bound, count - base.get(bound, 0.0)) for bound, count in current.ttft_buckets
        )
        p95 = quantile(0.95, recent)
        return {
            "runs_active": current.active,
            "runs_finished": current.finished - (start.finished if start else 0.0),
            "ttft_p95_ms": None if p95 is None else round(p95 * 1000, 1),
            "window_seconds": min(self.window, current.at - start.at) if start else None,
        }


def process_ended(pid: int) -> None:
    """Forget a worker's live gauges once it has stopped (multiprocess mode)."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


@dataclass
class ComponentState:
    """What the last check of one dependency found."""

    latency_ms: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    checked_at: float | None = None

    def ok(self, seconds: float) -> None:
        """Record a successful check that took `seconds`."""
        self.latency_ms = round(seconds * 1000, 3)
        self.checked_at = time.time()

    def failed(self, error: BaseException | str) -> None:
        """Record a failed check."""
        self.last_error = str(error) or type(error).__name__
        self.last_error_at = self.checked_at = time.time()


@dataclass
class ResourceSampler:
    """Samples CPU, memory, descriptors, tasks, loop lag and Redis round trip."""

    interval: float
    ping: Callable[[], Awaitable[object]] | None = None
    redis: ComponentState = field(default_factory=ComponentState)
    recent: RecentFigures = field(default_factory=RecentFigures)
    _process: psutil.Process = field(default_factory=psutil.Process)
    _cpu: float = 0.0

    def sample(self) -> None:
        """Read this process's resources now."""
        times = self._process.cpu_times()
        cpu = times.user + times.system
        CPU_SECONDS.inc(max(cpu - self._cpu, 0.0))
        self._cpu = cpu
        RESIDENT_MEMORY.set(self._process.memory_info().rss)
        with contextlib.suppress(psutil.Error, AttributeError):
            OPEN_FDS.set(self._process.num_fds())
        ASYNCIO_TASKS.set(len(asyncio.all_tasks()))
        self.recent.keep(read_now())

    async def check_redis(self) -> None:
        """PING Redis once, recording the round trip or the error."""
        if self.ping is None:
            return
        started = time.perf_counter()
        try:
            await asyncio.wait_for(self.ping(), timeout=max(self.interval, 1.0))
        except Exception as exc:  # any failure means Redis is down, for this service
            self.redis.failed(exc)
            REDIS_UP.set(0)
            return
        elapsed = time.perf_counter() - started
        REDIS_ROUNDTRIP.observe(elapsed)
        self.redis.ok(elapsed)
        REDIS_UP.set(1)

    async def run(self) -> None:
        """Sample every `interval` seconds until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            planned = loop.time() + self.interval
            await asyncio.sleep(self.interval)
            # A busy loop wakes the sampler late; how late is the lag every client feels.
            LOOP_LAG.set(max(loop.time() - planned, 0.0))
            self.sample()
            await self.check_redis()
