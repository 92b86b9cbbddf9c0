"""What a finished run cost and how it went: metrics, the log line, its end's figures."""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

from nodes.errors import ErrorCode
from server.engine.run import Run
from server.observability import metrics
from server.observability.observer import RunObserver
from server.observability.tracing import Tracing

logger = logging.getLogger("alma.engine")


async def account(
    run: Run, terminal: dict[str, Any], observer: RunObserver, tracing: Tracing
) -> dict[str, Any]:
    """Record how the run went in metrics and the log; the figures its last event carries."""
    now = time.perf_counter()
    progress = run.progress
    data = terminal["params"]["data"]
    code = data.get("code") or ""
    # An interrupted run stopped well, waiting for a person: not a failure.
    outcome = (
        data["event"] if data["event"] in ("completed", "interrupted")
        else "cancelled" if code == ErrorCode.CANCELLED else "failed"
    )  # fmt: skip
    route = progress.route or "unknown"
    metrics.RUNS_FINISHED.labels(route, outcome, code).inc()
    metrics.RUN_DURATION.labels(route, outcome).observe(now - progress.started)
    figures: dict[str, Any] = {
        "route": progress.route,
        "duration_ms": round((now - progress.started) * 1000, 1),
        "cost_usd": round(observer.cost_usd, 8),
        "models": {name: dataclasses.asdict(t) for name, t in observer.models.items()},
    }
    if progress.first_token_at is not None:
        ttft = progress.first_token_at - progress.started
        metrics.TIME_TO_FIRST_TOKEN.labels(route).observe(ttft)
        figures["time_to_first_token_ms"] = round(ttft * 1000, 1)
        completion = sum(totals.completion_tokens for totals in observer.models.values())
        streaming = (progress.last_token_at or now) - progress.first_token_at
        if completion and streaming > 0:
            metrics.TOKENS_PER_SECOND.labels(route).observe(completion / streaming)
            figures["tokens_per_second"] = round(completion / streaming, 1)
    trace_url = await tracing.run_url(run.run_id)
    if trace_url is not None:
        figures["trace_url"] = trace_url
    log = logger.info if outcome in ("completed", "interrupted") else logger.warning
    log(
        "run %s %s on route %s in %.0f ms",
        run.run_id,
        outcome,
        route,
        figures["duration_ms"],
        extra={"outcome": outcome, "error_code": code or None, "route": route,
               "cost_usd": figures["cost_usd"]},
    )  # fmt: skip
    return figures
