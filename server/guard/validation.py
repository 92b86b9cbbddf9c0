"""What a client may send a run: its shape, its size, and text made safe for prompts and logs."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import orjson
from pydantic import ValidationError

from server.guard.refusals import Refusal, Refused

THREAD_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"
"""Thread and run ids: 1-128 of letters, digits and `._:@-`, starting alphanumeric."""
_THREAD_ID = re.compile(THREAD_ID_PATTERN)
# C0/C1 controls but tab and newline; bidi embeddings, overrides and isolates (they make
# text read differently from how it is stored); zero-width spaces and the BOM (they hide
# text). Zero-width joiners stay: scripts and emoji sequences need them.
_CONTROL = re.compile(
    r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b\u200e\u200f\u202a-\u202e\u2060\u2066-\u2069\ufeff]"
)
_ROLES = frozenset({"user", "human", "assistant", "ai", "system"})


def normalise_text(text: str) -> str:
    """Unicode NFC, newline line ends, and no control characters but newline and tab."""
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    return _CONTROL.sub("", text)


def describe_invalid(exc: ValidationError) -> str:
    """Each failed field and why, without echoing what was sent.

    Pydantic's own text repeats the input (hostile content included) and links its
    documentation; a client needs the field and the reason only.
    """
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or 'params'}: {error['msg']}"
        for error in exc.errors(include_url=False, include_input=False)
    )


def check_thread_id(thread_id: str) -> None:
    """Raises `Refused` for an id outside the allowed format."""
    if not _THREAD_ID.match(thread_id):
        raise Refused(
            Refusal.INVALID,
            "thread id must be 1-128 letters, digits or ._:@- and start with a letter or digit",
        )


INPUT_SHAPE = 'input must be {"messages": [...]} and nothing else'
"""Why a run input was refused for its shape."""


def check_run_input(value: Any, *, max_messages: int, max_chars: int) -> dict[str, Any]:
    """The run input `{"messages": [...]}`, validated and its text normalised.

    Raises:
        Refused: `INVALID`, naming the field and, for a size, the limit.
    """
    if not isinstance(value, dict) or set(value) != {"messages"}:
        raise Refused(Refusal.INVALID, INPUT_SHAPE)
    messages = value["messages"]
    if not isinstance(messages, list) or not messages:
        raise Refused(Refusal.INVALID, "input.messages must be a non-empty list")
    if len(messages) > max_messages:
        raise Refused(
            Refusal.INVALID,
            f"input.messages has {len(messages)} messages; the limit is {max_messages} "
            "(ALMA_MAX_MESSAGES)",
        )
    return {
        "messages": [
            _message(message, f"input.messages[{i}]", max_chars)
            for i, message in enumerate(messages)
        ]
    }


def _message(message: Any, where: str, max_chars: int) -> dict[str, Any]:
    if isinstance(message, list | tuple) and len(message) == 2:
        message = {"role": message[0], "content": message[1]}
    if not isinstance(message, dict):
        raise Refused(Refusal.INVALID, f"{where} must be an object with role and content")
    role = message.get("role", message.get("type"))
    if role not in _ROLES:
        raise Refused(Refusal.INVALID, f"{where}.role must be one of {', '.join(sorted(_ROLES))}")
    unknown = set(message) - {"role", "type", "content", "id", "name"}
    if unknown:
        raise Refused(Refusal.INVALID, f"{where}: unknown field(s) {sorted(unknown)}")
    labels: dict[str, str] = {}
    for field in ("id", "name"):
        if field in message:
            if not isinstance(message[field], str):
                raise Refused(Refusal.INVALID, f"{where}.{field} must be text")
            labels[field] = normalise_text(message[field])
    content = _content(message.get("content"), f"{where}.content")
    texts = _texts(content)
    if not any(text.strip() for text in texts):
        raise Refused(Refusal.INVALID, f"{where}.content has no text")
    # The name goes into the prompt as well, so it counts toward the same limit.
    length = sum(len(part) for part in texts) + len(labels.get("name", ""))
    if length > max_chars:
        raise Refused(
            Refusal.INVALID,
            f"{where}.content has {length} characters; the limit is {max_chars} "
            "(ALMA_MAX_MESSAGE_CHARS)",
        )
    return {**labels, "role": role, "content": content}


def _content(content: Any, where: str) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return normalise_text(content)
    if isinstance(content, list):
        blocks = []
        for i, block in enumerate(content):
            if not (isinstance(block, dict) and block.get("type") == "text"
                    and isinstance(block.get("text"), str)):  # fmt: skip
                raise Refused(
                    Refusal.INVALID, f'{where}[{i}] must be {{"type": "text", "text": ...}}'
                )
            blocks.append({"type": "text", "text": normalise_text(block["text"])})
        return blocks
    raise Refused(Refusal.INVALID, f"{where} must be text or a list of text blocks")


def _texts(content: str | list[dict[str, Any]]) -> list[str]:
    return [content] if isinstance(content, str) else [block["text"] for block in content]


def title_of(messages: list[dict[str, Any]], length: int = 80) -> str:
    """A short title for a conversation: the start of the newest user message."""
    for message in reversed(messages):
        if message.get("role") in ("user", "human"):
            text = " ".join(" ".join(_texts(message["content"])).split())
            return text if len(text) <= length else text[: length - 1].rstrip() + "…"
    return ""


def check_state_messages(value: Any, *, max_messages: int, max_chars: int) -> list[Any]:
    """Messages written to a thread's state: held to the run input's bounds, kept whole.

    A state write may carry whole messages as LangGraph serialises them (an AI message
    with its metadata, a tool call), so fields beyond a run input's are kept; but there
    are no more of them than a run may send, no text longer, and every text normalised.

    Raises:
        Refused: `INVALID`, naming the field and the limit.
    """
    messages = value if isinstance(value, list) else [value]
    if len(messages) > max_messages:
        raise Refused(
            Refusal.INVALID,
            f"values.messages has {len(messages)} messages; the limit is {max_messages} "
            "(ALMA_MAX_MESSAGES)",
        )
    checked = []
    for i, message in enumerate(messages):
        kept = _normalised(message) if isinstance(message, dict) else message
        # Counted as JSON, fields and all: a state write has no other bound on its size.
        length = len(orjson.dumps(kept, default=str))
        if length > max_chars:
            raise Refused(
                Refusal.INVALID,
                f"values.messages[{i}] is {length} characters of JSON; the limit is "
                f"{max_chars} (ALMA_MAX_MESSAGE_CHARS)",
            )
        checked.append(kept)
    return checked


def _normalised(message: dict[str, Any]) -> dict[str, Any]:
    message = dict(message)
    content = message.get("content")
    if isinstance(content, str):
        message["content"] = normalise_text(content)
    elif isinstance(content, list):
        message["content"] = [
            {**block, "text": normalise_text(block["text"])}
            if isinstance(block, dict) and isinstance(block.get("text"), str)
            else block
            for block in content
        ]
    if isinstance(message.get("name"), str):
        message["name"] = normalise_text(message["name"])
    return message
