"""What a client may send a run: its shape, its size, and text made safe for prompts and logs."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from server.protocol import ProtocolError

THREAD_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"
"""Thread and run ids: 1-128 of letters, digits and `._:@-`, starting alphanumeric."""
_THREAD_ID = re.compile(THREAD_ID_PATTERN)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_ROLES = frozenset({"user", "human", "assistant", "ai", "system"})


def normalise_text(text: str) -> str:
    """Unicode NFC, newline line ends, and no control characters but newline and tab."""
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    return _CONTROL.sub("", text)


def check_thread_id(thread_id: str) -> None:
    """Raises `ProtocolError` for an id outside the allowed format."""
    if not _THREAD_ID.match(thread_id):
        raise ProtocolError(
            "invalid_argument",
            "thread id must be 1-128 letters, digits or ._:@- and start with a letter or digit",
        )


def check_run_input(value: Any, *, max_messages: int, max_chars: int) -> dict[str, Any]:
    """The run input `{"messages": [...]}`, validated and its text normalised.

    Raises:
        ProtocolError: `invalid_argument`, naming the field and, for a size, the limit.
    """
    if not isinstance(value, dict) or set(value) != {"messages"}:
        raise ProtocolError(
            "invalid_argument", 'input must be {"messages": [...]} and nothing else'
        )
    messages = value["messages"]
    if not isinstance(messages, list) or not messages:
        raise ProtocolError("invalid_argument", "input.messages must be a non-empty list")
    if len(messages) > max_messages:
        raise ProtocolError(
            "invalid_argument",
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
        raise ProtocolError("invalid_argument", f"{where} must be an object with role and content")
    role = message.get("role", message.get("type"))
    if role not in _ROLES:
        raise ProtocolError(
            "invalid_argument", f"{where}.role must be one of {', '.join(sorted(_ROLES))}"
        )
    unknown = set(message) - {"role", "type", "content", "id", "name"}
    if unknown:
        raise ProtocolError("invalid_argument", f"{where}: unknown field(s) {sorted(unknown)}")
    content = _content(message.get("content"), f"{where}.content")
    length = sum(len(part) for part in _texts(content))
    if length > max_chars:
        raise ProtocolError(
            "invalid_argument",
            f"{where}.content has {length} characters; the limit is {max_chars} "
            "(ALMA_MAX_MESSAGE_CHARS)",
        )
    normalised = {k: v for k, v in message.items() if k in ("id", "name")}
    return {**normalised, "role": role, "content": content}


def _content(content: Any, where: str) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return normalise_text(content)
    if isinstance(content, list):
        blocks = []
        for i, block in enumerate(content):
            if not (isinstance(block, dict) and block.get("type") == "text"
                    and isinstance(block.get("text"), str)):  # fmt: skip
                raise ProtocolError(
                    "invalid_argument", f'{where}[{i}] must be {{"type": "text", "text": ...}}'
                )
            blocks.append({"type": "text", "text": normalise_text(block["text"])})
        return blocks
    raise ProtocolError("invalid_argument", f"{where} must be text or a list of text blocks")


def _texts(content: str | list[dict[str, Any]]) -> list[str]:
    return [content] if isinstance(content, str) else [block["text"] for block in content]


def title_of(messages: list[dict[str, Any]], length: int = 80) -> str:
    """A short title for a conversation: the start of the newest user message."""
    for message in reversed(messages):
        if message.get("role") in ("user", "human"):
            text = " ".join(" ".join(_texts(message["content"])).split())
            return text if len(text) <= length else text[: length - 1].rstrip() + "…"
    return ""
