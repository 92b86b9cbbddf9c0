"""`alma eval` / `python -m evals`: run the suites, print and save the scores, hold the line.

Offline by default: with no `LANGSMITH_API_KEY` the experiments run locally through
LangSmith's `aevaluate` with nothing uploaded and no connection made. With a key, the
datasets are uploaded (or completed) and each suite × router is an experiment in
LangSmith, with its metadata. Either way the scores are compared with a saved baseline;
a drop beyond the tolerance fails the command.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import sys
import warnings
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langsmith import Client
from langsmith.evaluation import aevaluate
from langsmith.run_helpers import tracing_context

from evals.datasets import Dataset, load, upload
from evals.evaluators import (
    ROUTES,
    answer_recall,
    context_recall,
    forgotten_after_deletion,
    judge,
    memory_recall,
    no_error,
    plan_and_synthesis,
    private_to_owner,
    route_accuracy,
    within_budget,
)
from evals.targets import Harness
from memory.factory import open_memory
from nodes.models import ModelProvider
from nodes.run_context import RouterMode
from server.services import service_graph
from server.settings import Settings
from server.version import VERSION

EVALS_DIR = Path(__file__).resolve().parent
SUITES = ("routing", "memory", "analytical", "crossthread")


@dataclass
class SuiteResult:
    """One suite under one router: mean scores and what else is worth printing."""

    suite: str
    router: str
    scores: dict[str, float] = field(default_factory=dict)
    confusion: dict[str, int] = field(default_factory=dict)
    accuracy_by_kind: dict[str, float] = field(default_factory=dict)
    by_route: dict[str, dict[str, float]] = field(default_factory=dict)
    """Mean tokens and milliseconds per route (answering suites)."""
    experiment: str | None = None

    def keyed(self) -> dict[str, float]:
        """Scores as `suite/router/metric`, the baseline's keys."""
        return {f"{self.suite}/{self.router}/{k}": v for k, v in self.scores.items()}


def _mean(values: Sequence[float]) -> float:
    return round(sum(values) / len(values), 4) if values else 0.0


def summarise(suite: str, router: str, rows: Sequence[Any]) -> SuiteResult:
    """Mean of each metric over the rows, with the routing and per-route breakdowns."""
    result = SuiteResult(suite=suite, router=router)
    collected: dict[str, list[float]] = {}
    for row in rows:
        for evaluation in row["evaluation_results"]["results"]:
            if evaluation.score is not None:
                collected.setdefault(evaluation.key, []).append(float(evaluation.score))
    result.scores = {key: _mean(values) for key, values in sorted(collected.items())}
    if suite == "routing":
        result.confusion = {f"{t}->{c}": 0 for t in ROUTES for c in (*ROUTES, "none")}
        kinds: dict[str, list[float]] = {}
        for row in rows:
            truth = row["example"].outputs["route"]
            chosen = (row["run"].outputs or {}).get("route") or "none"
            result.confusion[f"{truth}->{chosen}"] += 1
            kind = (row["example"].metadata or {}).get("kind", "clear")
            kinds.setdefault(kind, []).append(float(truth == chosen))
        result.accuracy_by_kind = {k: _mean(v) for k, v in sorted(kinds.items())}
    else:
        routes: dict[str, dict[str, list[float]]] = {}
        for row in rows:
            outputs = row["run"].outputs or {}
            figures = routes.setdefault(outputs.get("route") or "none", {"tokens": [], "ms": []})
            figures["tokens"].append(float(outputs.get("tokens", 0)))
            figures["ms"].append(float(outputs.get("duration_ms", 0)))
        result.by_route = {
            route: {"tokens": _mean(f["tokens"]), "ms": _mean(f["ms"])}
            for route, f in sorted(routes.items())
        }
    return result


@dataclass
class Plan:
    """What one invocation runs, and where the results go."""

    suites: Sequence[str]
    routers: Sequence[RouterMode]
    upload: bool
    concurrency: int


def _client(settings: Settings) -> tuple[Client, bool]:
    key = settings.langsmith_api_key.get_secret_value() if settings.langsmith_api_key else None
    if key:
        return Client(api_url=settings.langsmith_endpoint, api_key=key), True
    # Offline: no background thread, no server info to fetch, nothing uploaded.
    client = Client(
        api_url=settings.langsmith_endpoint, api_key="offline", auto_batch_tracing=False, info={}
    )
    return client, False


_OFFLINE_BANNER = "Starting evaluation of experiment: "
"""What LangSmith prints for each local experiment, which exists nowhere but here."""


@contextmanager
def _offline(upload: bool) -> Iterator[None]:
    """Offline: no tracing, and none of LangSmith's notices about not uploading.

    Only those notices are dropped: other warnings, and anything else printed meanwhile,
    still come out.
    """
    if upload:
        yield
        return
    printed = io.StringIO()
    try:
        with tracing_context(enabled=False), warnings.catch_warnings(), redirect_stdout(printed):
            warnings.filterwarnings("ignore", message="'upload_runs' parameter is in beta")
            yield
    finally:
        for line in printed.getvalue().splitlines(keepends=True):
            if not line.startswith(_OFFLINE_BANNER):
                sys.stdout.write(line)


async def run_suites(settings: Settings, plan: Plan) -> list[SuiteResult]:
    """Run every suite under every router it applies to."""
    provider = ModelProvider.from_settings(settings)
    client, upload = _client(settings)
    real = not provider.is_simulated
    memory_settings = settings.model_copy(
        update={"redis_prefix": "alma-evals", "thread_ttl": 3600, "cache_ttl": 0}
    )
    results: list[SuiteResult] = []
    try:
        async with open_memory(memory_settings) as memory:
            harness = Harness(graph=service_graph(provider, memory))
            for suite in plan.suites:
                dataset = load(suite)
                routers = plan.routers if suite == "routing" else [plan.routers[-1]]
                for router in routers:
                    target, evaluators = _suite(suite, router, harness, provider, real)
                    print(f"… {suite} with the {router} router", file=sys.stderr, flush=True)
                    results.append(await _experiment(
                        dataset, router, target, evaluators, client, upload, plan,
                        {"model": provider.description, "simulated": provider.is_simulated,
                         "memory": memory.description},
                    ))  # fmt: skip
    finally:
        await provider.aclose()
    return results


def _suite(
    suite: str, router: RouterMode, harness: Harness, provider: ModelProvider, real: bool
) -> tuple[Callable[[dict[str, Any]], Awaitable[dict[str, Any]]], list[Any]]:
    quality = [judge(provider)] if real else []
    if suite == "routing":

        async def route(inputs: dict[str, Any]) -> dict[str, Any]:
            return await harness.route(inputs, router)

        return route, [route_accuracy]
    if suite == "memory":
        return harness.converse, [context_recall, answer_recall, no_error, within_budget, *quality]
    if suite == "crossthread":
        return harness.across_threads, [
            memory_recall,
            forgotten_after_deletion,
            private_to_owner,
            no_error,
            within_budget,
        ]

    async def answer(inputs: dict[str, Any]) -> dict[str, Any]:
        return await harness.answer(inputs, router)

    return answer, [plan_and_synthesis, no_error, within_budget, *quality]


async def _experiment(
    dataset: Dataset,
    router: RouterMode,
    target: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]],
    evaluators: list[Any],
    client: Client,
    upload: bool,
    plan: Plan,
    about: dict[str, Any],
) -> SuiteResult:
    data: Any = upload_dataset(client, dataset) if upload else dataset.examples()

    async def quiet(inputs: dict[str, Any]) -> dict[str, Any]:
        # Offline, the graph's own LangChain tracing is off too: nothing leaves.
        with tracing_context(enabled=False):
            return await target(inputs)

    with _offline(upload):
        results = await aevaluate(
            target if upload else quiet,
            data=data,
            evaluators=evaluators,
            experiment_prefix=f"alma-{dataset.suite}-{router}",
            description=f"ALMA {VERSION}: {dataset.suite} suite, {router} router",
            metadata={
                "suite": dataset.suite,
                "router": router,
                "alma_version": VERSION,
                "dataset": dataset.name,
                **about,
            },  # fmt: skip
            max_concurrency=plan.concurrency,
            client=client,
            upload_results=upload,
            disable_evaluator_tracing=not upload,
        )
        rows = [row async for row in results]
    summary = summarise(dataset.suite, router, rows)
    summary.experiment = results.experiment_name if upload else None
    return summary


def upload_dataset(client: Client, dataset: Dataset) -> str:
    """The dataset's name in LangSmith, once it holds every example."""
    return upload(client, dataset)


def table(results: Sequence[SuiteResult]) -> str:
    """The scores as a Markdown table, with the routing breakdowns."""
    lines = ["| suite | router | metric | score |", "|---|---|---|---|"]
    for r in results:
        lines += [f"| {r.suite} | {r.router} | {k} | {v:.3f} |" for k, v in r.scores.items()]
    for r in results:
        if r.confusion:
            lines += ["", f"Routing, {r.router} router — accuracy by kind: "
                      + ", ".join(f"{k} {v:.2f}" for k, v in r.accuracy_by_kind.items()),
                      "confusion (labelled→chosen): "
                      + ", ".join(f"{k} {v}" for k, v in r.confusion.items())]  # fmt: skip
        for route, figures in r.by_route.items():
            lines.append(
                f"{r.suite}: {route} runs average {figures['tokens']:.0f} tokens, "
                f"{figures['ms']:.0f} ms"
            )
    return "\n".join(lines)


def compared(current: dict[str, float], baseline: dict[str, float]) -> list[str]:
    """The baseline's scores that apply: those of the suites and routers that ran."""
    ran = {key.rsplit("/", 1)[0] for key in current}
    return [key for key in sorted(baseline) if key.rsplit("/", 1)[0] in ran]


def compare(current: dict[str, float], baseline: dict[str, float], tolerance: float) -> list[str]:
    """Scores that fell more than `tolerance` below the baseline, or went missing.

    Only the suites and routers that ran are compared.
    """
    drops = []
    for key in compared(current, baseline):
        expected = baseline[key]
        got = current.get(key)
        if got is None:
            drops.append(f"{key}: missing (baseline {expected:.3f})")
        elif got < expected - tolerance:
            drops.append(f"{key}: {got:.3f} < baseline {expected:.3f} − {tolerance}")
    return drops


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="alma eval", description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", nargs="+", choices=SUITES, default=list(SUITES))
    parser.add_argument(
        "--router", nargs="+", choices=["heuristic", "hybrid", "llm"],
        help="routers for the routing suite (default: heuristic and hybrid; llm too with a "
        "real model); the last one answers the other suites",
    )  # fmt: skip
    parser.add_argument("--baseline", type=Path, default=EVALS_DIR / "baseline.json")
    parser.add_argument("--tolerance", type=float, default=0.02, help="allowed drop per score")
    parser.add_argument("--out", type=Path, default=EVALS_DIR / "results" / "latest.json")
    parser.add_argument("--update-baseline", action="store_true",
                        help="save these scores as the new baseline")  # fmt: skip
    parser.add_argument("--concurrency", type=int, default=8)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run, print, save, and compare; 1 when a score dropped."""
    args = _parser().parse_args(argv)
    settings = Settings()
    simulated = ModelProvider.from_settings(settings).is_simulated
    if simulated:
        # Quality, not pace, is measured here: the simulator answers at once.
        settings = settings.model_copy(
            update={"simulated_ttft": 0.0, "simulated_tokens_per_second": 0.0}
        )
    routers: list[RouterMode] = args.router or (
        ["heuristic", "hybrid"] if simulated else ["heuristic", "llm", "hybrid"]
    )
    plan = Plan(suites=args.suite, routers=routers, upload=False, concurrency=args.concurrency)
    results = asyncio.run(run_suites(settings, plan))
    current = {k: v for r in results for k, v in r.keyed().items()}
    print(table(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "alma_version": VERSION, "simulated": simulated, "scores": current,
        "suites": [r.__dict__ for r in results]}, indent=2) + "\n")  # fmt: skip
    if args.update_baseline:
        args.baseline.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
        print(f"\nbaseline saved: {args.baseline}", file=sys.stderr)
        return 0
    if not args.baseline.exists():
        print(f"\nno baseline at {args.baseline}; run with --update-baseline", file=sys.stderr)
        return 0
    baseline = json.loads(args.baseline.read_text())
    # Scores of a real model are not comparable with the simulated baseline's.
    if not simulated:
        print("\nreal model: not compared with the simulated baseline", file=sys.stderr)
        return 0
    drops = compare(current, baseline, args.tolerance)
    for drop in drops:
        print(f"eval: score dropped — {drop}", file=sys.stderr)
    checked = len(compared(current, baseline))
    held = (
        f"{checked - len(drops)} of {checked} metrics within {args.tolerance} of"
        if checked
        else "no metric of these suites and routers is in"
    )
    print(f"\neval: {held} the baseline {args.baseline}", file=sys.stderr)
    return 1 if drops else 0
