"""A fast, deterministic creative-or-analytical classifier: weighted cue words, no model call."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from nodes.facts import is_question, is_statement, split_sentences

Route = Literal["creative", "analytical"]
Conversational = Literal["greeting", "thanks", "statement", "recall"]

# Weights: 3 names a task outright ("write a poem"), 2 is a strong hint, 1 a weak one.
# A few cues in Spanish, French, German and Portuguese, since learners ask in their language.
_CREATIVE_CUES: dict[str, int] = {
    r"\b(write|compose|draft|create|pen|give me|tell me)\b.{0,30}"
    r"\b(poem|haiku|sonnet|limerick|story|tale|fable|song|lyrics|verse|script|slogan|"
    r"joke|riddle|dialogue|monologue|letter|speech)s?\b": 3,
    r"\b(poem|haiku|sonnet|limerick|ballad|verse|stanza|lyrics|fairy tale|short story|"
    r"bedtime story|fable)s?\b": 2,
    r"\b(imagine|invent|brainstorm|dream up|make up|fiction(al)?|fantasy|whimsical|"
    r"creative(ly)?|metaphors?|rhym(e|es|ing)|once upon a time|in the style of|"
    r"character|plot|villain|hero)\b": 2,
    r"\b(story|stories|describe|playful|funny|name ideas|tagline|motto)\b": 1,
    r"\b(poema|cuento|historia|canci[oó]n|po[eè]me|histoire|conte|chanson|gedicht|"
    r"geschichte|m[äa]rchen|hist[oó]ria|poesia|escribe|[ée]cris|schreibe?|escreva)\b": 2,
}

_ANALYTICAL_CUES: dict[str, int] = {
    r"\b(compare|comparison|contrast|analy[sz]e|analysis|evaluate|assess|calculate|"
    r"compute|estimate|derive|prove|diagnose|debug|benchmark|optimi[sz]e|quantify)\b": 3,
    r"\b(pros and cons|trade-?offs?|versus|vs\.?|difference between|step[- ]by[- ]step|"
    r"how (does|do|can|would|much|many)|why (does|do|is|are)|explain|complexity|"
    r"algorithm|performance|statistics?|probability|equation|formula|proof|cost|"
    r"budget|strategy|plan for|recommend|which is better|should i)\b": 2,
    r"\b(data|numbers?|figures?|metrics?|percent(age)?|rate|average|mean|median|"
    r"throughput|latency|memory|sort(ing)?|database|integers?|function|code|"
    r"summari[sz]e|outline|list|steps?)\b": 1,
    r"\d": 1,
    r"\b(compara|comparar|analiza|analizar|calcula|calcular|explica|compare[rz]|"
    r"analyse[rz]?|calcule[rz]?|expliquez|vergleiche|analysiere|berechne|erkl[äa]re|"
    r"warum|por qu[eé]|pourquoi)\b": 2,
}

_COMPILED = {
    "creative": [(re.compile(p, re.IGNORECASE), w) for p, w in _CREATIVE_CUES.items()],
    "analytical": [(re.compile(p, re.IGNORECASE), w) for p, w in _ANALYTICAL_CUES.items()],
}


@dataclass(frozen=True, slots=True)
class Classification:
    """The classifier's verdict on one request."""

    route: Route
    confidence: float
    reason: str


def _score(text: str, route: Route) -> tuple[int, list[str]]:
    score, hits = 0, list[str]()
    for pattern, weight in _COMPILED[route]:
        found = pattern.search(text)
        if found:
            score += weight
            hit = found.group(0).strip()
            if hit.lower() not in (h.lower() for h in hits):
                hits.append(hit)
    return score, hits


_GREETING = re.compile(
    r"^(?:hi|hello|hey|hiya|howdy|good (?:morning|afternoon|evening|night)|bye|goodbye|"
    r"see you|hola|bonjour|hallo|ciao|ol[aá])\b",
    re.IGNORECASE,
)
_THANKS = re.compile(
    r"^(?:thanks|thank you|thx|cheers|great|perfect|nice|cool|ok(?:ay)?|got it|lovely|"
    r"wonderful|awesome|merci|gracias|danke|obrigad[oa])\b",
    re.IGNORECASE,
)
# Case matters for a bare "I": in Polish or Italian a lower-case "i" means "and".
_FIRST_PERSON = re.compile(r"\bI\b|\b(?i:i'm|i've|i'd|my|me|we|we're|our|us)\b")
# An English statement of fact; an imperative in another language has none of these.
_COPULA = re.compile(r"\b(?:is|are|was|were|has|have)\b", re.IGNORECASE)
# A question about what the user said earlier, answered from the conversation itself.
_RECALL = re.compile(
    r"\b(?:did i|have i|i said|i told|i mentioned|do you (?:still )?(?:know|remember)|"
    r"remind me|what(?:'s| is| was| are) my|who am i|what do i|which \w+ (?:do|am|did) i)\b",
    re.IGNORECASE,
)
_SHORT = 25
"""Words at most in a conversational turn; a longer message is treated as a request."""


def conversational(text: str) -> Conversational | None:
    """What kind of conversational turn `text` is, if it asks for no piece and no analysis.

    A greeting or thanks, a short statement about the user ("My name is Ada and I like
    rivers"), or a short question about what they said earlier ("What is my name?").
    Anything that carries a task cue of its own is a request, not a conversational turn.
    """
    words = text.split()
    if not words or len(words) > _SHORT or _strongest_cue(text) >= 3:
        return None
    sentences = split_sentences(text)
    if _GREETING.match(text.strip()) and len(words) <= 8:
        return "greeting"
    if _THANKS.match(text.strip()) and len(words) <= 8 and not is_question(text):
        return "thanks"
    if all(is_statement(s) for s in sentences) and (
        _FIRST_PERSON.search(text) or _COPULA.search(text)
    ):
        return "statement"
    asks = any(is_question(s) or s.lower().startswith("remind me") for s in sentences)
    if asks and (_RECALL.search(text) or (_FIRST_PERSON.search(text) and _strongest_cue(text) < 2)):
        return "recall"
    return None


def _strongest_cue(text: str) -> int:
    return max(
        (weight for patterns in _COMPILED.values() for pattern, weight in patterns
         if pattern.search(text)),
        default=0,
    )  # fmt: skip


_CONVERSATIONAL_REASONS: dict[Conversational, str] = {
    "greeting": "a greeting",
    "thanks": "thanks or an acknowledgement",
    "statement": "the user says something about themselves",
    "recall": "a question about what the user said earlier",
}


def classify(text: str) -> Classification:
    """Classify a request as creative or analytical from its wording alone.

    Confidence grows with the margin between the two scores (Laplace-smoothed), so one
    weak cue gives a low confidence that a hybrid router hands to the model. A
    conversational turn goes to the creative route, whose writer replies in a few words,
    rather than through a multi-step analysis.
    """
    turn = conversational(text)
    if turn is not None:
        reason = f"conversational: {_CONVERSATIONAL_REASONS[turn]}; a short reply, no analysis"
        return Classification(route="creative", confidence=0.9, reason=reason)
    creative, creative_hits = _score(text, "creative")
    analytical, analytical_hits = _score(text, "analytical")
    if creative == analytical == 0:
        return Classification(
            route="analytical", confidence=0.5, reason="no creative or analytical cue found"
        )
    route: Route = "creative" if creative > analytical else "analytical"
    winner, loser = max(creative, analytical), min(creative, analytical)
    confidence = round((winner + 1) / (winner + loser + 2), 3)
    if creative == analytical:
        route, confidence = "analytical", 0.5
    hits = creative_hits if route == "creative" else analytical_hits
    reason = f"{route} cues ({winner} vs {loser}): " + ", ".join(repr(h) for h in hits[:4])
    return Classification(route=route, confidence=confidence, reason=reason)
