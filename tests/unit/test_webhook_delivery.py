"""Webhook delivery: retried on failures worth retrying, pinned to checked addresses."""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from server.webhooks.delivery import WebhookSender
from server.webhooks.policy import IPAddress, WebhookPolicy


class Loopback:
    """A real HTTP server on 127.0.0.1 answering each call with the next status."""

    def __init__(self, statuses: Sequence[int]) -> None:
        self.statuses = list(statuses)
        self.seen: list[dict[str, str]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
                self.rfile.read(int(self.headers["content-length"]))
                owner.seen.append({"host": self.headers["host"], "path": self.path})
                code = owner.statuses.pop(0) if owner.statuses else 204
                self.send_response(code)
                if code in (301, 302, 307):
                    self.send_header("location", "http://169.254.169.254/latest")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]


@pytest.fixture
def loopback(request: pytest.FixtureRequest) -> Iterator[Loopback]:
    server = Loopback(getattr(request, "param", []))
    thread = threading.Thread(target=server.server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


def sender(policy: WebhookPolicy, resolve: dict[str, list[str]] | None = None) -> WebhookSender:
    async def resolver(host: str, port: int) -> Sequence[str]:
        return (resolve or {})[host]

    return WebhookSender(policy, timeout=5, attempts=3, backoff=0.01, resolver=resolver)


@pytest.mark.parametrize("loopback", [[500, 429]], indirect=True)
async def test_server_errors_are_retried_until_accepted(loopback: Loopback) -> None:
    hooks = sender(WebhookPolicy.of(["127.0.0.1"]))
    url = f"http://127.0.0.1:{loopback.port}/done?x=1"
    assert await hooks.deliver(url, {"run_id": "r"})
    assert [seen["path"] for seen in loopback.seen] == ["/done?x=1"] * 3
    await hooks.aclose(1)


@pytest.mark.parametrize("loopback", [[400], [302]], indirect=True)
async def test_a_refusal_or_a_redirect_is_not_followed_or_retried(loopback: Loopback) -> None:
    hooks = sender(WebhookPolicy.of(["127.0.0.1"]))
    assert not await hooks.deliver(f"http://127.0.0.1:{loopback.port}/", {"run_id": "r"})
    assert len(loopback.seen) == 1
    await hooks.aclose(1)


async def test_a_name_rebound_to_loopback_is_refused_when_called(loopback: Loopback) -> None:
    # The name passed when the run was created; by the time the run ends it resolves
    # to this machine. The check at delivery refuses it: nothing is sent.
    hooks = sender(WebhookPolicy.of(["hooks.test"]), {"hooks.test": ["127.0.0.1"]})
    assert not await hooks.deliver(f"http://hooks.test:{loopback.port}/", {"run_id": "r"})
    assert loopback.seen == []
    await hooks.aclose(1)


async def test_the_request_connects_to_the_checked_address_under_the_hosts_name() -> None:
    policy = WebhookPolicy.of(["hooks.test"])
    hooks = sender(policy)
    plain = hooks._pinned(policy.parse("http://hooks.test:8080/h?x=1"), ip("93.184.215.14"), b"{}")
    assert str(plain.url) == "http://93.184.215.14:8080/h?x=1"
    assert plain.headers["host"] == "hooks.test:8080"
    secure = hooks._pinned(policy.parse("https://hooks.test/x"), ip("2606:2800:21f::1"), b"{}")
    assert str(secure.url) == "https://[2606:2800:21f::1]/x"
    assert secure.headers["host"] == "hooks.test"
    # TLS names (and checks the certificate of) the host, not the address.
    assert secure.extensions["sni_hostname"] == "hooks.test"
    await hooks.aclose(1)


def ip(text: str) -> IPAddress:
    return ipaddress.ip_address(text)
