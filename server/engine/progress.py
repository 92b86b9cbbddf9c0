"""What a run's stream has shown so far: when its tokens flowed, its route, its answer.

One tracker serves every wire format: each hands it the text tokens it streams (with
the node and namespace they came from), the route once decided, and the root graph's
state when it streams it. From it come the run's time to first token and tokens per
second, how it ended, and, when the run is stopped, the part of the answer its user
already saw.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from graphs.interface import PartialAnswer, is_answer, partial_answer, route_of_namespace


@dataclass
class RunProgress:
    """Timing and answer text of one run, fed by its stream."""

    started: float = field(default_factory=time.perf_counter)
    first_token_at: float | None = None
    last_token_at: float | None = None
    route: str | None = None
    values: Mapping[str, Any] | None = None
    """The root graph's state as last streamed (when the wire format streams it)."""
    interrupts: list[str] = field(default_factory=list)
    """Ids of the interrupts the run stopped at, waiting for a person (agent protocol)."""
    _message_id: str | None = None
    _answer_route: str | None = None
    _answer: list[str] = field(default_factory=list)

    def text(
        self, node: str | None, namespace: Sequence[str] | str, message_id: str | None, text: str
    ) -> None:
        """A piece of a message streamed by `node`; a new `message_id` starts a message."""
        if text:
            self.last_token_at = time.perf_counter()
            if self.first_token_at is None:
                self.first_token_at = self.last_token_at
        if not is_answer(node):
            return
        if message_id is not None and message_id != self._message_id:
            self._message_id = message_id
            self._answer_route = route_of_namespace(namespace)
            self._answer = []
        if self._message_id is not None and text:
            self._answer.append(text)

    def partial(self) -> PartialAnswer | None:
        """How to keep the answer shown so far, if the run stops now."""
        if self._message_id is None:
            return None
        return partial_answer(self._answer_route, self._message_id, "".join(self._answer))
