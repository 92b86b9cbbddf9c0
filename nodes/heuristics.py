"""A fast, deterministic creative-or-analytical classifier: weighted cue words, no model call."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Route = Literal["creative", "analytical"]

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


def classify(text: str) -> Classification:
    """Classify a request as creative or analytical from its wording alone.

    Confidence grows with the margin between the two scores (Laplace-smoothed), so one
    weak cue gives a low confidence that a hybrid router hands to the model.
    """
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
