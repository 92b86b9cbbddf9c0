"""WebSocket compression: negotiated only when ALMA_WS_COMPRESSION says so, by the real server."""

from __future__ import annotations

import uuid

import pytest
from websockets.sync.client import connect

from tests.utils.redis_server import RedisServer
from tests.utils.service import alma_service

pytestmark = pytest.mark.integration


def negotiated(url: str) -> str | None:
    """The extensions the server accepted for a client that offers permessage-deflate."""
    # websockets' client offers permessage-deflate unless told not to, as browsers do.
    with connect(f"{url}/threads/{uuid.uuid4()}/stream/events") as socket:
        assert socket.response is not None
        return socket.response.headers.get("Sec-WebSocket-Extensions")


@pytest.mark.parametrize(("setting", "compressed"), [(None, False), ("true", True)])
def test_compression_follows_the_setting(
    redis: RedisServer, setting: str | None, compressed: bool
) -> None:
    env = {} if setting is None else {"ALMA_WS_COMPRESSION": setting}
    with alma_service(redis.url, prefix="ws-compression", env=env) as service:
        extensions = negotiated(service.url.replace("http://", "ws://"))
    assert (extensions is not None and "permessage-deflate" in extensions) is compressed
