"""Facts a user states about themselves, read from their own words with fixed rules.

"My name is Ada and I like rivers" yields the name Ada and the liking "rivers"; any other
plain statement ("My cat is called Miso") is kept whole. No model is involved, so the
same messages always give the same facts: the simulated model answers from them, and
they are shaped to be stored as long-term memory later.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

FactKind = Literal[
    "name", "likes", "favourite", "studies", "work", "learning", "visiting", "statement"
]

# Words a fact answers to beyond its own wording: "Which city did I say I'm visiting?"
# shares no word with "I'm planning a trip to Lisbon".
_CUES: dict[FactKind, frozenset[str]] = {
    "name": frozenset({"name", "call", "called"}),
    "likes": frozenset({"like", "love", "enjoy", "prefer", "favourite", "favorite", "fan"}),
    "favourite": frozenset({"favourite", "favorite", "like", "love", "prefer"}),
    "studies": frozenset({"study", "studies", "studying", "field", "subject", "major", "course"}),
    "work": frozenset({"work", "job", "profession", "occupation", "career"}),
    "learning": frozenset({"learn", "learning", "language", "studying"}),
    "visiting": frozenset({"visit", "visiting", "city", "trip", "travel", "going", "place"}),
    "statement": frozenset(),
}

_STOPWORDS = frozenset(
    "a an the and or but of to in on at for with by from as is are was were be been am "
    "do does did done i i'm me my mine we our us you your yours it its it's this that these "
    "those what which who whom whose where when why how again please tell told say said "
    "remind know remember recall mention mentioned can could would will should just "
    "about there here so very really also some any all one has have had not no yes "
    "he she they them her his their".split()
)

# Abbreviations whose full stop does not end a sentence.
_SENTENCE_END = re.compile(
    r"(?<!\bDr\.)(?<!\bMr\.)(?<!\bMs\.)(?<!\bMrs\.)(?<!\bSt\.)(?<=[.!?])\s+|\n+"
)
_WORD = re.compile(r"[\w'-]+")

_QUESTION_START = re.compile(
    r"^(?:what|which|who|whom|whose|where|when|why|how|do|does|did|can|could|would|will|"
    r"is|are|am|was|were|should|shall|have|has)\b",
    re.IGNORECASE,
)
# A sentence that asks for something, or muses, states no fact about the user.
_REQUEST = re.compile(
    r"^(?:please|let'?s|let|write|compose|draft|create|pen|tell|give|make|explain|compare|"
    r"analy[sz]e|describe|list|summari[sz]e|calculate|compute|estimate|evaluate|assess|plan|"
    r"help|show|suggest|recommend|imagine|invent|brainstorm|translate|find|remind|come|break|"
    r"walk|work out|critique|diagnose|determine|prove|derive|sing|rewrite|edit|fix|check|"
    r"review|teach|define|outline|generate|try|use|say|answer|name|think|go|keep|add|put|"
    r"send|read|play|draw|cook|build|design|weigh|rank|sort|solve|simplify)\b"
    r"|\bplease\b"
    r"|^(?:i|we)(?:'d| would) (?:like|love|prefer)\b"
    r"|^(?:i|we)(?:'m| am| are|'re)? (?:need|want|wonder|wondering|think|believe|guess|"
    r"suppose|doubt|trying|looking for|curious|not sure|have a question|don't|do not|can't|"
    r"cannot)\b",
    re.IGNORECASE,
)

_CLAUSE_END = re.compile(
    r"[.,;:!?()]|\s(?:and|but|so|because|though|although|while)\s+(?:i|i'm|my|we|our|you)\b"
    r"|\s(?:but|because|though|although)\b",
    re.IGNORECASE,
)
_VALUE_END = re.compile(
    r"\s(?:at|in|on|for|to|over|than|rather|with|since|during|from|because)\b", re.IGNORECASE
)

_NAME = r"([A-Z][\w'-]*(?:\s+[A-Z][\w'-]*)?)"
_NAMED = re.compile(
    r"(?i:\bmy name is|\bmy name's|\bcall me)\s+([A-Za-z][\w'-]*(?:\s+[A-Z][\w'-]*)?)"
)
_I_AM = re.compile(r"(?i:\bi am|\bi'm)\s+" + _NAME)
# Capitalised words after "I'm" that describe a state, not a name ("I'm Not sure").
_NOT_NAMES = frozenset(
    "not so very really just also still here back fine good ok okay sorry glad happy sure "
    "the a an in at from on new tired done ready afraid alma excited curious interested "
    "busy free home".split()
)
_LIKES = re.compile(
    r"\bi (?:really |also |just |do |absolutely |especially )?(?:like|love|enjoy|adore)\s+"
    r"(?!to\b|it\b|that\b|this\b|them\b|you\b|when\b|how\b)(.+)",
    re.IGNORECASE,
)
_PREFER = re.compile(r"\bi (?:much |really |usually )?prefer\s+(?!to\b|it\b|that\b)(.+)", re.I)
_FAVOURITE = re.compile(
    r"\bmy (?:absolute |all-time |very )?favou?rite\s+([\w' -]{1,30}?)\s+(?:is|are)\s+(.+)",
    re.IGNORECASE,
)
_STUDIES = re.compile(
    r"\bi(?:'m| am)? (?:study|studying|major in|majoring in)\s+(.+)", re.IGNORECASE
)
_WORK = re.compile(r"\bi(?:'m| am)? work(?:ing)? (as|at|for|in|on)\s+(.+)", re.IGNORECASE)
_LEARNING = re.compile(r"\bi(?:'m| am) learning\s+(?!to\b|how\b|about\b)(.+)", re.IGNORECASE)
_VISITING = re.compile(
    r"(?i:\b(?:trip|travel(?:l)?ing|going|flying|heading|moving|holiday|vacation|visiting|"
    r"visit)(?: back)?(?: to| in)?)\s+" + _NAME
)
_NOT_PLACES = frozenset(
    "january february march april may june july august september october november december "
    "monday tuesday wednesday thursday friday saturday sunday i the a".split()
)

_SECOND_PERSON = {
    "i": "you", "i'm": "you're", "i've": "you've", "i'd": "you'd", "i'll": "you'll",
    "me": "you", "my": "your", "mine": "yours", "myself": "yourself",
    "we": "you", "we're": "you're", "we've": "you've", "our": "your", "ours": "yours",
    "us": "you",
}  # fmt: skip
_LOWER_START = frozenset({"the", "a", "an", "this", "that", "it", "there", "some"})


@dataclass(frozen=True, slots=True)
class Fact:
    """One thing the user said about themselves."""

    kind: FactKind
    value: str
    """The fact itself: "Ada", "rivers", "chemistry", or a whole statement."""
    said: str
    """The fact in ALMA's words, second person: "your name is Ada"."""
    source: str
    """The sentence the user stated it in."""
    topic: str = ""
    """What a favourite is of ("colour"); empty for other kinds."""


def split_sentences(text: str) -> list[str]:
    """The sentences of `text`, trimmed; "Dr. Okafor" does not end one."""
    normalised = text.replace("\u2019", "'").strip()
    return [part.strip() for part in _SENTENCE_END.split(normalised) if part.strip()]


def is_question(sentence: str) -> bool:
    """Whether a sentence asks rather than states."""
    return sentence.rstrip().endswith("?") or bool(_QUESTION_START.match(sentence.strip()))


def is_request(sentence: str) -> bool:
    """Whether a sentence asks for something to be done ("Write…", "I need…", "please")."""
    return bool(_REQUEST.search(sentence.strip()))


def is_statement(sentence: str) -> bool:
    """Whether a sentence states something: neither a question nor a request."""
    return len(_WORD.findall(sentence)) >= 2 and not (is_question(sentence) or is_request(sentence))


def second_person(text: str) -> str:
    """Rephrase the user's first-person words as ALMA would say them back."""
    text = re.sub(r"\bI am\b", "you are", text.strip().rstrip(".!"))
    text = re.sub(r"\bI was\b", "you were", text)
    words = text.split(" ")
    turned = [_SECOND_PERSON.get(word.lower(), word) for word in words]
    if words and (words[0].lower() in _LOWER_START or turned[0] != words[0]):
        turned[0] = turned[0][:1].lower() + turned[0][1:]
    return " ".join(turned)


def _clause(text: str) -> str:
    found = _CLAUSE_END.search(text)
    return (text[: found.start()] if found else text).strip()


def _value(clause: str) -> str:
    found = _VALUE_END.search(clause)
    value = clause[: found.start()] if found else clause
    return re.sub(r"^(?:a|an)\s+", "", value.strip(), flags=re.IGNORECASE)


def _name_facts(sentence: str) -> list[Fact]:
    found = _NAMED.search(sentence)
    if found is None:
        found = _I_AM.search(sentence)
        first = found.group(1).split()[0].lower() if found else ""
        if found is None or first in _NOT_NAMES or first.endswith(("ing", "ed")):
            return []
    name = found.group(1).strip()
    name = name[:1].upper() + name[1:]
    return [Fact("name", name, f"your name is {name}", sentence)]


def _facts_in(sentence: str) -> list[Fact]:
    facts = _name_facts(sentence)
    for pattern, kind in ((_LIKES, "likes"), (_PREFER, "likes")):
        found = pattern.search(sentence)
        if found and (clause := _clause(found.group(1))):
            verb = found.group(0)[: found.start(1) - found.start(0)].strip()
            value = _value(clause) if kind == "likes" and "prefer" in verb.lower() else clause
            facts.append(Fact("likes", value, second_person(f"{verb} {clause}"), sentence))
    found = _FAVOURITE.search(sentence)
    if found and (clause := _clause(found.group(2))):
        topic = found.group(1).strip()
        said = f"your favourite {topic} is {clause}"
        facts.append(Fact("favourite", clause, said, sentence, topic=topic))
    found = _STUDIES.search(sentence)
    if found and (clause := _clause(found.group(1))):
        facts.append(Fact("studies", _value(clause), f"you study {clause}", sentence))
    found = _WORK.search(sentence)
    if found and (clause := _clause(found.group(2))):
        said = second_person(f"you work {found.group(1).lower()} {clause}")
        facts.append(Fact("work", _value(clause), said, sentence))
    found = _LEARNING.search(sentence)
    if found and (clause := _clause(found.group(1))):
        said = second_person(f"you're learning {clause}")
        facts.append(Fact("learning", _value(clause), said, sentence))
    for found in _VISITING.finditer(sentence):
        place = found.group(1).split()
        place = place[:1] if len(place) > 1 and place[1].lower() in _NOT_PLACES else place
        if place and place[0].lower() not in _NOT_PLACES:
            where = " ".join(place)
            facts.append(Fact("visiting", where, f"you're going to {where}", sentence))
            break
    return facts


def extract_facts(text: str) -> list[Fact]:
    """The facts one user message states, in the order stated.

    Each statement yields its structured facts (name, likings, studies, work, learning,
    a place being visited) and is also kept whole, so that what no rule names can still
    be recalled. Questions and requests state nothing.
    """
    facts: list[Fact] = []
    for sentence in split_sentences(text):
        if not is_statement(sentence):
            continue
        facts.extend(_facts_in(sentence))
        statement = sentence.rstrip(".!")
        facts.append(Fact("statement", statement, second_person(statement), sentence))
    return facts


def content_words(text: str) -> set[str]:
    """The words of `text` that carry meaning, lower-cased, plurals and -ing folded."""
    words = set()
    for word in _WORD.findall(text.lower().replace("\u2019", "'")):
        word = word.removesuffix("'s").strip("'-")
        if word in _STOPWORDS or len(word) < 2:
            continue
        if word.endswith("ing") and len(word) > 5:
            word = word[:-3]
        elif word.endswith("ies") and len(word) > 4:
            word = word[:-3] + "y"
        elif word.endswith("s") and not word.endswith("ss") and len(word) > 3:
            word = word[:-1]
        words.add(word)
    return words


@functools.cache
def _cue_words(kind: FactKind) -> set[str]:
    return content_words(" ".join(_CUES[kind]))


@dataclass(frozen=True, slots=True)
class UserFacts:
    """What a user stated over a conversation, oldest first; newer statements win."""

    facts: tuple[Fact, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.facts)

    @property
    def name(self) -> str | None:
        """The name the user gave most recently, if any."""
        names = [fact.value for fact in self.facts if fact.kind == "name"]
        return names[-1] if names else None

    @property
    def likes(self) -> tuple[str, ...]:
        """What the user likes or prefers, most recent first, without repeats."""
        seen: dict[str, None] = {}
        for fact in reversed(self.facts):
            if fact.kind in ("likes", "favourite"):
                seen.setdefault(fact.value, None)
        return tuple(seen)

    def relevant_to(self, text: str, *, limit: int = 3) -> tuple[Fact, ...]:
        """The facts that share meaning with `text` (a question, a request), best first.

        A structured fact outranks the whole statement it came from, and that statement
        is then left out, so each thing said is recalled once.
        """
        wanted = content_words(text)
        if not wanted:
            return ()
        scored: list[tuple[int, int, int, Fact]] = []
        for index, fact in enumerate(self.facts):
            words = _cue_words(fact.kind) | content_words(f"{fact.topic} {fact.said}")
            score = len(wanted & words)
            if score:
                structured = int(fact.kind != "statement")
                scored.append((score, structured, index, fact))
        scored.sort(key=lambda item: (item[0], item[1], item[2]), reverse=True)
        chosen: list[Fact] = []
        covered: set[str] = set()
        for _, _, _, fact in scored:
            if fact.kind == "statement" and fact.source in covered:
                continue
            if any(fact.said == other.said for other in chosen):
                continue
            chosen.append(fact)
            covered.add(fact.source)
            if len(chosen) == limit:
                break
        return tuple(chosen)

    def resolve(self, phrase: str) -> str | None:
        """What a phrase such as "my field of study" or "my favourite colour" refers to."""
        if not re.match(r"\s*(?:my|our|what i|the thing i)\b", phrase, re.IGNORECASE):
            return None
        for fact in self.relevant_to(phrase, limit=3):
            if fact.kind not in ("statement", "name"):
                return fact.value
        return None


def gather_facts(messages: Iterable[str]) -> UserFacts:
    """Every fact stated across a user's messages, oldest message first."""
    return UserFacts(tuple(fact for text in messages for fact in extract_facts(text)))
