"""One table says how each wire format answers each refusal of the service."""

from pathlib import Path

import pytest

import server
from server.guard.refusals import Refusal, Refused

SERVER = Path(server.__file__).parent


@pytest.mark.parametrize(
    ("reason", "code", "status"),
    [
        (Refusal.INVALID, "invalid_argument", 422),
        (Refusal.BUSY, "invalid_argument", 409),
        (Refusal.NO_SUCH_RUN, "no_such_run", 404),
        (Refusal.NOT_FOUND, "permission_denied", 404),
        (Refusal.LIMITED, "permission_denied", 429),
        (Refusal.SHUTTING_DOWN, "not_supported", 503),
    ],
)
def test_each_refusal_has_one_protocol_code_and_one_http_status(
    reason: Refusal, code: str, status: int
) -> None:
    refused = Refused(reason, "why", retry_after=3)
    assert (refused.protocol_code, refused.http_status) == (code, status)
    assert (refused.message, refused.details) == ("why", {"retry_after": 3})


def test_only_the_protocol_adapter_speaks_in_protocol_errors() -> None:
    # The engine, validation and the API routes refuse with `Refused`; a protocol error
    # is the agent protocol's own business (unknown command, subscription, namespace).
    speakers = sorted(
        str(path.relative_to(SERVER))
        for path in SERVER.rglob("*.py")
        if "ProtocolError" in path.read_text()
    )
    assert speakers == ["agent_protocol/commands.py", "agent_protocol/messages.py"]
