"""What the simulated model answers: deterministic, task-shaped text for each role.

The router's choice, the analysis plan and each step, the synthesis, a creative piece
and its edit, and short conversational replies — all read from the prompt the node sent,
so the same request always gets the same answer and the graph's paths can be tested
without a provider. `SimulatedChatModel` streams these; the OpenAI-compatible simulator
serves them over HTTP.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import (
    BaseMessage,
    HumanMessage,
    SystemMessage,
)

from nodes.facts import Fact, UserFacts, gather_facts, second_person
from nodes.heuristics import Conversational, classify, conversational

_ROLE = re.compile(r"You are ALMA's (\w+)\.")
_MAX_STEPS = re.compile(r"at most (\d+)")
_STEP = re.compile(r"Step (\d+) of (\d+): (.+)")
_REMEMBERED = re.compile(r'^- (.+) \(you said: "(.+)"\)$', re.MULTILINE)


@dataclass(frozen=True, slots=True)
class SimulatedReply:
    """What the simulated model answers: text, or one call of a bound tool."""

    text: str = ""
    tool_name: str | None = None
    tool_args: dict[str, Any] = field(default_factory=dict)


def digest(text: str) -> int:
    """A stable number for `text`: the same text always picks the same answer."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def _pick(options: Sequence[str], seed: int, salt: int = 0) -> str:
    return options[(seed + salt * 7919) % len(options)]


def _request_of(messages: Sequence[BaseMessage]) -> str:
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            text = message.text
            found = re.search(r"^Request: (.+)$", text, re.MULTILINE)
            return found.group(1).strip() if found else text.strip()
    return ""


def _subject(request: str) -> str:
    found = re.search(r"\babout (.+)", request, re.IGNORECASE)
    subject = found.group(1) if found else request
    return subject.strip().rstrip(".!?") or "the question"


def _user_turns(messages: Sequence[BaseMessage]) -> list[str]:
    """What the user said, oldest first: human messages that are not a node's prompt."""
    return [
        message.text
        for message in messages
        if isinstance(message, HumanMessage) and not message.text.startswith("Request: ")
    ]


def _remembered(messages: Sequence[BaseMessage]) -> tuple[Fact, ...]:
    """The facts the prompt says are remembered from other threads (nodes/memory.py)."""
    system = next((m.text for m in messages if isinstance(m, SystemMessage)), "")
    # Each is read again from the user's words, which may state other facts too: only
    # the one listed is remembered.
    return tuple(
        fact
        for said, source in _REMEMBERED.findall(system)
        for fact in gather_facts([source]).facts
        if fact.said == said
    )


def _conversation(messages: Sequence[BaseMessage]) -> tuple[str, UserFacts]:
    """The user's latest request, and the facts they stated before it (or remembered)."""
    turns = _user_turns(messages)
    request = turns[-1] if turns else _request_of(messages)
    return request, UserFacts(_remembered(messages) + gather_facts(turns[:-1]).facts)


def _noting_memories(text: str, messages: Sequence[BaseMessage]) -> str:
    """`text`, closed by a "Remembered:" line when it uses a remembered fact."""
    used = {f.said: None for f in _remembered(messages) if f.value.lower() in text.lower()}
    return f"{text}\n\nRemembered: {'; '.join(used)}" if used else text


_FORMS = (
    r"poems?|haikus?|sonnets?|limericks?|ballads?|stor(?:y|ies)|tales?|fables?|songs?|"
    r"lyrics|verses?|rhymes?|lullab(?:y|ies)|pieces?|lines?|stanzas?|odes?|jokes?|riddles?"
)
_TASK_WORDS = re.compile(
    r"\b(?:please|write|compose|draft|create|pen|make|give|tell|sing|me|us|a|an|the|some|few|"
    r"short|little|long|quick|funny|new|small|brief|tiny|sad|happy|gentle|simple|"
    rf"{_FORMS})\b",
    re.IGNORECASE,
)
_ADDRESSED = re.compile(
    r"[,;]?\s*\b(?:using|with|that uses|including|for|to)\s+(?:my|our|me)\b(?:\s+name)?\.?$",
    re.IGNORECASE,
)


def _piece_subject(request: str, facts: UserFacts) -> str:
    """What a creative piece is about: the request's subject, not its whole text.

    "about my field of study" becomes what the user said they study; a request with no
    subject of its own ("a short poem using my name") takes something the user likes.
    """
    text = _ADDRESSED.sub("", request.strip().rstrip(".!?")).strip()
    found = re.search(r"\b(?:about|on)\s+(.+)", text, re.IGNORECASE)
    if found:
        subject = found.group(1).strip()
        resolved = facts.resolve(subject)
        if resolved:
            return resolved
        return second_person(subject) if re.match(r"(?i)my|our\b", subject) else subject
    rest = " ".join(_TASK_WORDS.sub(" ", text).split()).strip(" ,;:")
    if rest:
        # A bare noun left from "a birthday rhyme" reads as "the birthday".
        return second_person(rest) if " " in rest or rest.endswith("s") else f"the {rest}"
    return facts.likes[0] if facts.likes else "the day"


def _dedication(facts: UserFacts) -> str:
    return f"*for {facts.name}*\n\n" if facts.name else ""


def _write(messages: Sequence[BaseMessage]) -> str:
    request, facts = _conversation(messages)
    turn = conversational(request)
    if turn is not None:
        return _converse(turn, request, facts)
    seed, subject = digest(request), _piece_subject(request, facts)
    lowered = request.lower()
    if "haiku" in lowered:
        return _dedication(facts) + "\n".join(
            [
                f"{_pick(['Quiet', 'Silver', 'Morning', 'Ancient'], seed).strip()} {subject} "
                f"{_pick(['wander', 'murmur', 'glisten', 'gather'], seed, 1)}",
                f"{_pick(['carrying the sky', 'under cedar shade', 'past the sleeping stones'], seed, 2)}",  # noqa: E501
                f"{_pick(['the heron waits', 'one leaf drifts away', 'dusk settles slowly'], seed, 3)}",  # noqa: E501
            ]
        )
    if re.search(r"poem|verse|sonnet|song|lyrics|rhyme|limerick|lullaby|ballad|ode\b", lowered):
        stanzas = [
            f"I went to find {subject} at the edge of day,\n"
            f"where light leans {_pick(['gold', 'thin', 'soft'], seed)} "
            "on the water and the wall,\n"
            "and every small thing seemed to have a say,\n"
            "and nothing hurried, nothing broke, at all.",
            f"The {_pick(['wind', 'tide', 'hour'], seed, 1)} kept count in syllables of rain;\n"
            f"I learned the names that {subject} had kept,\n"
            + (f"and wrote down yours, {facts.name}, and wrote it down again,\n"
               if facts.name else "and wrote them down, and wrote them down again,\n")
            + "the way a field remembers where we slept.",
            "So here it ends, the way that good things do:\n"
            "not with a door, but with a window, wide —\n"
            f"{subject} still turning, patient, old and new,\n"
            "and room enough for both of us inside.",
        ]  # fmt: skip
        return _dedication(facts) + "\n\n".join(stanzas)
    if re.search(r"story|stories|tale|fable", lowered):
        hero = facts.name or _pick(["Mira", "Tomas", "Ada", "Kenji", "Lior"], seed)
        return (
            f"{hero} had heard about {subject} all her life, but had never gone looking. "
            "On the first morning of spring she packed bread, a pencil and a map that "
            "stopped halfway across the page.\n\n"
            "The road bent through "
            f"{_pick(['pine woods', 'salt flats', 'old orchards'], seed, 1)}, "
            "and everyone she met gave her a different warning and the same advice: keep "
            "going, and write down what you see. By evening her notebook was full.\n\n"
            f"When at last she found {subject}, it was smaller than the stories and far "
            "stranger. She sat with it until the stars came out, and then she drew the rest "
            "of the map herself."
        )
    greeting = f"{facts.name}, think" if facts.name else "Think"
    return (
        f"{greeting} of {subject} as a {_pick(['lantern', 'river', 'garden', 'door'], seed)}: "
        "it changes with whoever comes near it, and it keeps a little of each visitor.\n\n"
        f"That is the quiet gift of {subject} — it asks us to slow down, notice, and "
        "make something of what we notice."
    )


def _told(facts: Sequence[Fact]) -> str:
    return "You told me that " + "; and that ".join(fact.said for fact in facts) + "."


def _converse(turn: Conversational, request: str, facts: UserFacts) -> str:
    """A short reply to a conversational turn, from what the user has said so far."""
    name = facts.name
    if turn == "greeting":
        hello = f"Hello, {name}!" if name else "Hello!"
        return (
            f"{hello} Ask me for a poem or a story, or for an analysis — a comparison, a "
            "plan, a calculation — and I'll remember what you tell me in this conversation."
        )
    if turn == "thanks":
        return f"You're welcome, {name}." if name else "You're welcome."
    if turn == "recall":
        relevant = facts.relevant_to(request)
        if relevant:
            return _told(relevant)
        if facts:
            return "You haven't told me that in this conversation. " + _told([facts.facts[0]])
        return "You haven't told me that in this conversation; tell me, and I'll remember."
    stated = gather_facts([request]).facts
    named = {fact.source for fact in stated if fact.kind == "name"}
    # A structured fact says it best; otherwise a whole statement that gave no name.
    kept = [fact for fact in stated if fact.kind not in ("name", "statement")] or [
        fact for fact in stated if fact.kind == "statement" and fact.source not in named
    ]
    name = next((fact.value for fact in stated if fact.kind == "name"), None)
    greeting = f"Nice to meet you, {name}." if name else "Noted."
    remember = f" I'll remember that {kept[0].said}." if kept else ""
    return f"{greeting}{remember} What would you like — a poem, a story, or an analysis?"


def _refine(messages: Sequence[BaseMessage]) -> str:
    text = messages[-1].text if messages else ""
    draft = text.split("Draft:\n", 1)[-1].strip()
    request, facts = _conversation(messages)
    if conversational(request) is not None:
        return draft
    title = _piece_subject(request, facts).title()
    return f"**{title}**\n\n{draft}"


_PLAN = {
    "Pin down what is being asked": (
        'The request, "{subject}", turns on a few quantities that can be stated plainly: '
        "what is being measured, under which conditions, and what would count as better."
        "{figure}"
    ),
    "Lay out the relevant facts and figures": (
        "The facts that decide it: cost in time, cost in memory, and how behaviour changes "
        "on unfavourable inputs.{figure} Each is stated with its usual range before "
        "anything is compared."
    ),
    "Weigh the options against each other": (
        "Set side by side, the options differ less on average than at the extremes: the "
        "typical case is close, while the worst case and the memory overhead separate "
        "them.{figure}"
    ),
    "Check edge cases and practical limits": (
        "At the edges (tiny inputs, already-ordered data, tight memory) the ranking can "
        "flip, so the conclusion has to say where it stops holding.{figure}"
    ),
    "Draw a conclusion with its caveats": (
        "Putting it together: prefer the option whose worst case stays predictable at this "
        "scale, and measure on real data before committing.{figure}"
    ),
}


def _plan(system: str) -> str:
    found = _MAX_STEPS.search(system)
    limit = int(found.group(1)) if found else 4
    steps = list(_PLAN)
    if limit < len(steps):
        steps = [*steps[: max(limit - 1, 0)], steps[-1]][:limit]
    return json.dumps(steps)


def _analyse(messages: Sequence[BaseMessage], request: str) -> str:
    found = _STEP.search(messages[-1].text if messages else "")
    step, label = (int(found.group(1)), found.group(3)) if found else (1, "Analyse the request")
    numbers = re.findall(r"\d+(?:\.\d+)?\s*[kKmMbB]?\b", request)
    figure = (
        f" With {numbers[0].strip()} in play, scale dominates."
        if numbers
        else " No figures were given, so the reasoning stays qualitative."
    )
    bodies = list(_PLAN.values())
    body = _PLAN.get(label)
    if body is None:
        # A step a reviewer wrote: the finding names it, so the answer visibly follows it.
        body = f'Taking the step "{label}" as asked. ' + bodies[(step - 1) % len(bodies)]
    return f"**{label}.** " + body.format(subject=_subject(request), figure=figure)


def _synthesise(request: str, messages: Sequence[BaseMessage]) -> str:
    labels = re.findall(r"^\*\*(.+?)\.\*\*", messages[-1].text if messages else "", re.MULTILINE)
    reasons = "\n".join(f"- **{label}**: covered above." for label in labels) or (
        "- The request was analysed step by step."
    )
    relevant = _conversation(messages)[1].relevant_to(request)
    told = f"### What you told me\n\n{_told(relevant)}\n\n" if relevant else ""
    return (
        f'## Answer\n\nFor "{_subject(request)}", the balanced answer depends on the '
        "constraints that matter most; the analysis points to the option that stays "
        f"predictable under load.\n\n{told}### Key reasons\n\n{reasons}\n\n### Caveats\n\n"
        "- Real measurements on your own data should confirm the conclusion.\n"
        "- This answer comes from ALMA's simulated model, not a real provider."
    )


def _route(request: str) -> dict[str, Any]:
    verdict = classify(request)
    return {
        "route": verdict.route,
        "confidence": min(0.95, verdict.confidence + 0.15),
        "reason": f"simulated model router: {verdict.reason}",
    }


def _fill(tool: dict[str, Any], request: str) -> dict[str, Any]:
    properties: dict[str, Any] = tool["function"].get("parameters", {}).get("properties", {})
    if "route" in properties:
        return _route(request)
    if "facts" in properties:  # the memory's extraction (nodes/memory.py)
        stated = [fact for fact in gather_facts([request]).facts if fact.kind != "statement"]
        return {"facts": [{"kind": f.kind, "value": f.value, "said": f.said, "topic": f.topic,
                           "source": f.source} for f in stated]}  # fmt: skip
    args: dict[str, Any] = {}
    for name, spec in properties.items():
        kind = spec.get("type")
        if "enum" in spec:
            args[name] = spec["enum"][0]
        elif kind in ("number", "integer"):
            args[name] = 0.5 if kind == "number" else 1
        elif kind == "boolean":
            args[name] = True
        elif kind == "array":
            args[name] = []
        else:
            args[name] = f"simulated {name}"
    return args


def simulate_reply(
    messages: Sequence[BaseMessage], tools: Sequence[dict[str, Any]] | None = None
) -> SimulatedReply:
    """Compose the deterministic reply to a prompt, shaped by the role its system prompt names.

    Args:
        messages: The prompt, system message first as ALMA's nodes send it.
        tools: OpenAI-format tool definitions bound to the call; when present the reply
            is a call of the first one, as structured output expects.

    Returns:
        The reply text, or a tool call with arguments.
    """
    system = next((m.text for m in messages if isinstance(m, SystemMessage)), "")
    found = _ROLE.search(system)
    role = found.group(1) if found else ""
    request = _request_of(messages)
    if tools:
        tool = tools[0]
        return SimulatedReply(tool_name=tool["function"]["name"], tool_args=_fill(tool, request))
    scripts: dict[str, Callable[[], str]] = {
        "writer": lambda: _noting_memories(_write(messages), messages),
        "editor": lambda: _refine(messages),
        "planner": lambda: _plan(system),
        "analyst": lambda: _analyse(messages, request),
        "synthesiser": lambda: _noting_memories(_synthesise(request, messages), messages),
    }
    script = scripts.get(role)
    if script is not None:
        return SimulatedReply(text=script())
    return SimulatedReply(text=f"(simulated reply) You said: {request or 'nothing'}")
