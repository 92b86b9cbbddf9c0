"""Why the service refuses a request, and how each wire format says so.

The engine, validation and limits raise `Refused` with a `Refusal`; the agent protocol
answers it with its error code and the LangGraph API with an HTTP status, both read
from the one table here, so the two can never disagree about a refusal.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from server.agent_protocol.messages import ProtocolCode


class Refusal(StrEnum):
    """What kind of refusal it is."""

    INVALID = "invalid"
    """The request is malformed or names something that does not exist."""
    BUSY = "busy"
    """The thread is running another run and the request may not wait for it."""
    NO_SUCH_RUN = "no_such_run"
    """No active run with that id on the thread."""
    NOT_FOUND = "not_found"
    """No such thread for this caller (missing, or another owner's: answered alike)."""
    LIMITED = "limited"
    """Over a rate limit or quota."""
    SHUTTING_DOWN = "shutting_down"
    """The process is draining; another one takes the request."""


_WIRE: dict[Refusal, tuple[ProtocolCode, int]] = {
    Refusal.INVALID: ("invalid_argument", 422),
    Refusal.BUSY: ("invalid_argument", 409),
    Refusal.NO_SUCH_RUN: ("no_such_run", 404),
    Refusal.NOT_FOUND: ("permission_denied", 404),
    Refusal.LIMITED: ("permission_denied", 429),
    Refusal.SHUTTING_DOWN: ("not_supported", 503),
}


class Refused(Exception):
    """A request the service will not carry out, with why and in words a client can act on."""

    def __init__(
        self,
        reason: Refusal,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        **details: Any,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.headers = headers or {}
        """HTTP headers of the refusal (a rate limit's `Retry-After` and `RateLimit-*`)."""
        self.details = details
        """Extra fields for a protocol answer (e.g. `retry_after` of a rate limit)."""

    @property
    def protocol_code(self) -> ProtocolCode:
        """The agent protocol's error code for it."""
        return _WIRE[self.reason][0]

    @property
    def http_status(self) -> int:
        """The LangGraph API's HTTP status for it."""
        return _WIRE[self.reason][1]
