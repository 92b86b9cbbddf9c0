"""Evaluators: each takes a run's outputs and the example's reference, returns a score.

They follow LangSmith's evaluator signature (`outputs`, `reference_outputs`, `inputs`),
so the same functions score local runs and LangSmith experiments.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, Field

from nodes.models import ModelProvider

Score = dict[str, Any]
Evaluator = Callable[..., Score]

ROUTES = ("creative", "analytical")

BUDGETS: dict[str, dict[str, float]] = {
    # Tokens (prompt + completion) and seconds one run may take, per route: generous for
    # a real provider, so a breach means something changed, not a slow afternoon.
    "creative": {"tokens": 4_000, "seconds": 30},
    "analytical": {"tokens": 16_000, "seconds": 120},
}


def route_accuracy(outputs: dict[str, Any], reference_outputs: dict[str, Any]) -> Score:
    """1 when the chosen route is the labelled one."""
    return {"key": "route_accuracy", "score": float(outputs["route"] == reference_outputs["route"])}


def confusion(runs: Sequence[Any], examples: Sequence[Any]) -> Score:
    """Summary evaluator: the confusion matrix of routes (labelled → chosen)."""
    matrix = {f"{truth}->{chosen}": 0 for truth in ROUTES for chosen in (*ROUTES, "none")}
    for run, example in zip(runs, examples, strict=True):
        chosen = (run.outputs or {}).get("route") or "none"
        matrix[f"{example.outputs['route']}->{chosen}"] += 1
    return {"key": "confusion", "score": None, "value": matrix}


def context_recall(outputs: dict[str, Any], reference_outputs: dict[str, Any]) -> Score:
    """Share of the earlier turns' facts present in the prompt of the last answer.

    The thread comes back from the checkpointer on every turn; a fact missing from the
    prompt is one the model could not have remembered.
    """
    facts = reference_outputs["facts"]
    prompt = outputs["last_prompt"].lower()
    found = sum(fact.lower() in prompt for fact in facts)
    return {"key": "context_recall", "score": found / len(facts)}


def answer_recall(outputs: dict[str, Any], reference_outputs: dict[str, Any]) -> Score:
    """Share of the facts the last answer states.

    The simulated model recalls too: it answers from the facts of earlier turns that
    bear on the question, with fixed rules, so this score shows memory working offline.
    """
    facts = reference_outputs["facts"]
    answer = outputs["answer"].lower()
    return {"key": "answer_recall", "score": sum(f.lower() in answer for f in facts) / len(facts)}


def _mentions(text: str, facts: list[str]) -> float:
    return sum(fact.lower() in text.lower() for fact in facts) / len(facts)


def memory_recall(outputs: dict[str, Any], reference_outputs: dict[str, Any]) -> Score:
    """Share of the facts told in another thread that a fresh thread's answer uses.

    Only an answer that says it remembered (a "Remembered:" line) scores.
    """
    answer = outputs["answer"]
    told = "remembered:" in answer.lower()
    return {"key": "memory_recall", "score": _mentions(answer, reference_outputs["facts"]) * told}


def forgotten_after_deletion(outputs: dict[str, Any], reference_outputs: dict[str, Any]) -> Score:
    """1 when, after the owner deleted their memories, the answer uses none of the facts."""
    answer = outputs["after_deletion"]
    used = _mentions(answer, reference_outputs["facts"]) or "remembered:" in answer.lower()
    return {"key": "forgotten_after_deletion", "score": float(not used)}


def private_to_owner(outputs: dict[str, Any], reference_outputs: dict[str, Any]) -> Score:
    """1 when another owner's answer to the same request uses none of the facts."""
    answer = outputs["other_owner"]
    used = _mentions(answer, reference_outputs["facts"]) or "remembered:" in answer.lower()
    return {"key": "private_to_owner", "score": float(not used)}


def plan_and_synthesis(outputs: dict[str, Any], reference_outputs: dict[str, Any]) -> Score:
    """1 when the answer is analytical with a plan, every step done, and a synthesis."""
    plan = outputs["plan"]
    ok = (
        outputs["route"] == "analytical"
        and len(plan) >= reference_outputs["min_steps"]
        and outputs["steps_finished"] == len(plan)
        and len(outputs["answer"].split()) >= 30
    )
    return {"key": "plan_and_synthesis", "score": float(ok)}


def within_budget(outputs: dict[str, Any]) -> Score:
    """Tokens and time of the run against its route's budget."""
    budget = BUDGETS.get(outputs.get("route") or "", BUDGETS["analytical"])
    return {"results": [
        {"key": "within_token_budget", "score": float(outputs["tokens"] <= budget["tokens"])},
        {"key": "within_time_budget",
         "score": float(outputs["duration_ms"] <= budget["seconds"] * 1000)},
    ]}  # fmt: skip


def no_error(outputs: dict[str, Any]) -> Score:
    """1 when the run ended without an error."""
    return {"key": "no_error", "score": float(not outputs.get("error"))}


class Judgement(BaseModel):
    """A judge's verdict on one answer."""

    score: int = Field(ge=1, le=5, description="1 = fails the request, 5 = excellent")
    reason: str = Field(description="One sentence on why")


_JUDGE_PROMPT = (
    "You grade answers of a learning assistant. Given the user's request and the answer, "
    "rate from 1 to 5 how well the answer fulfils the request: correct, complete, clear, "
    "and in the form asked for (a poem when a poem was asked, an analysis when an "
    "analysis was). Answer with the score and one sentence."
)


def judge(provider: ModelProvider) -> Callable[..., Any]:
    """LLM-as-judge on answer quality, with the router role's model (real models only)."""
    model = provider.chat_model("router").with_structured_output(
        Judgement, method="function_calling"
    )

    async def answer_quality(inputs: dict[str, Any], outputs: dict[str, Any]) -> Score:
        request = inputs.get("request") or (inputs.get("turns") or [""])[-1]
        verdict = await model.ainvoke(
            [("system", _JUDGE_PROMPT),
             ("user", f"Request:\n{request}\n\nAnswer:\n{outputs['answer']}")]
        )  # fmt: skip
        assert isinstance(verdict, Judgement)
        return {"key": "answer_quality", "score": (verdict.score - 1) / 4,
                "comment": verdict.reason}  # fmt: skip

    return answer_quality
