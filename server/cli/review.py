"""`alma chat --review-plan`: show the analytical plan and ask on the terminal what to do.

The answer is the resume value the graph's `review` node reads (`nodes.plan_review`);
when the graph refuses it, the run stops again with the reason, and the question is
asked again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TextIO

from nodes.plan_review import PLAN_REVIEW

ReadLine = Callable[[], str]
"""Reads one line with its newline; an empty string at the end of input."""


def reviewable(payload: Any) -> bool:
    """Whether an interrupt's payload is a plan to review (the only one asked here)."""
    return isinstance(payload, dict) and payload.get("kind") == PLAN_REVIEW


def ask_review(payload: dict[str, Any], read_line: ReadLine, out: TextIO) -> dict[str, Any]:
    """Print the proposed plan and read the decision: approve, edit (new steps) or reject.

    At the end of input the plan is rejected: nobody is there to approve it.
    """
    out.write("\nReview the plan before it is analysed:\n")
    for number, step in enumerate(payload.get("steps") or [], 1):
        out.write(f"  {number}. {step}\n")
    if payload.get("error"):
        out.write(f"(the last answer was refused: {payload['error']})\n")
    while True:
        out.write("approve, edit or reject? [a/e/r] ")
        out.flush()
        line = read_line()
        if not line:
            out.write("\n(end of input: the plan is rejected)\n")
            return {"action": "reject"}
        choice = line.strip().lower()
        if choice in ("a", "approve", ""):
            return {"action": "approve"}
        if choice in ("r", "reject"):
            return {"action": "reject"}
        if choice in ("e", "edit"):
            return {"action": "edit", "steps": _read_steps(payload, read_line, out)}
        out.write("answer a, e or r\n")


def _read_steps(payload: dict[str, Any], read_line: ReadLine, out: TextIO) -> list[str]:
    most = payload.get("max_steps")
    out.write(f"Type the plan's steps, one per line (at most {most}); an empty line ends it:\n")
    steps: list[str] = []
    while True:
        out.write(f"  {len(steps) + 1}. ")
        out.flush()
        line = read_line()
        if not line.strip():
            if not line:
                out.write("\n")
            return steps
        steps.append(line.strip())
