"""The server's event loop is the one ALMA_EVENT_LOOP names, in the real server process."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.utils.redis_server import RedisServer
from tests.utils.service import alma_service

pytestmark = pytest.mark.integration


def uvloop_loaded(pid: int) -> bool:
    """Whether the process has uvloop's compiled loop mapped into its memory."""
    return "uvloop/loop." in Path(f"/proc/{pid}/maps").read_text()


@pytest.mark.parametrize(("setting", "uvloop"), [(None, False), ("uvloop", True)])
def test_the_server_runs_on_the_configured_loop(
    redis: RedisServer, setting: str | None, uvloop: bool
) -> None:
    env = {} if setting is None else {"ALMA_EVENT_LOOP": setting}
    with alma_service(redis.url, prefix="event-loop", env=env) as service:
        assert uvloop_loaded(service.process.process.pid) is uvloop
