"""The webhook URL policy: only allowed hosts, never inward, no spelling tricks."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import pytest

from server.webhooks.policy import WebhookPolicy, WebhookRefused

POLICY = WebhookPolicy.of(["hooks.example.com", "*.corp.example", "127.0.0.1", "localhost"])


def table(entries: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    """A resolver answering from `entries`, as a DNS server under test would."""

    async def resolve(host: str, port: int) -> Sequence[str]:
        if host not in entries:
            raise OSError(f"{host} does not resolve")
        return entries[host]

    return resolve


def test_no_allowed_host_turns_webhooks_off_and_names_the_setting() -> None:
    with pytest.raises(WebhookRefused, match="ALMA_WEBHOOK_ALLOWED_HOSTS"):
        WebhookPolicy().parse("https://hooks.example.com/run")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.1/", "shorthand"),
        ("http://0x7f.1/", "shorthand"),
        ("http://0x7f000001/", "shorthand"),
        ("http://2130706433/", "shorthand"),
        ("http://0177.0.0.1/", "shorthand"),
        ("http://[::1]/", "not one the operator allows"),
        ("http://[::ffff:127.0.0.1]/", "not one the operator allows"),
        ("http://0.0.0.0/", "not one the operator allows"),
        ("http://hooks.example.com@127.0.0.1/", "credentials"),
        ("http://user:pw@hooks.example.com/", "credentials"),
        ("http://evil.example/", "not one the operator allows"),
        ("ftp://hooks.example.com/", "http"),
        ("/threads", "http"),
        ("http://hooks.example.com\\@127.0.0.1/", "spaces, control"),
        ("http://hooks.example.com /", "spaces, control"),
        ("http://[fe80::1%25eth0]/", "zone"),
        ("http://hooks.example.com:99999/", "port"),
    ],
)
def test_tricks_are_refused(url: str, reason: str) -> None:
    with pytest.raises(WebhookRefused, match=reason):
        POLICY.parse(url)


def test_a_listed_name_and_pattern_pass_the_static_checks() -> None:
    target = POLICY.parse("https://Hooks.Example.com./run?x=1")
    assert (target.host, target.port, target.literal) == ("hooks.example.com", 443, None)
    assert POLICY.parse("http://a.b.corp.example:8080/").port == 8080
    with pytest.raises(WebhookRefused):
        POLICY.parse("http://corp.example.evil/")


def test_an_address_listed_itself_may_be_loopback() -> None:
    target = POLICY.parse("http://127.0.0.1:9000/hook")
    assert target.literal == ipaddress.IPv4Address("127.0.0.1")


@pytest.mark.parametrize(
    "address", ["::1", "127.0.0.1", "0.0.0.0", "169.254.169.254", "10.0.0.1", "100.64.0.1"]
)
def test_a_name_may_not_lead_to_a_special_address(address: str) -> None:
    # Even 127.0.0.1, listed above: the operator allowed the address, not a name for it.
    with pytest.raises(WebhookRefused, match="address, which webhooks may not reach"):
        POLICY.check_address(ipaddress.ip_address(address), "hooks.example.com")


async def test_a_name_resolving_to_loopback_is_refused() -> None:
    # The real system resolver: `localhost` is loopback on every machine.
    with pytest.raises(WebhookRefused, match="loopback"):
        await POLICY.resolve(POLICY.parse("http://localhost:8000/"))


async def test_every_resolved_address_is_checked() -> None:
    # One public and one private answer: a client might connect to either.
    resolver = table({"hooks.example.com": ["93.184.215.14", "10.1.2.3"]})
    with pytest.raises(WebhookRefused, match="private"):
        await POLICY.resolve(POLICY.parse("https://hooks.example.com/"), resolver)


async def test_a_mapped_loopback_answer_is_loopback() -> None:
    resolver = table({"hooks.example.com": ["::ffff:127.0.0.1"]})
    with pytest.raises(WebhookRefused, match="loopback"):
        await POLICY.resolve(POLICY.parse("https://hooks.example.com/"), resolver)


async def test_public_answers_pass_and_private_ones_only_when_allowed() -> None:
    public = table({"hooks.example.com": ["93.184.215.14", "2606:2800:21f:cb07::1"]})
    found = await POLICY.resolve(POLICY.parse("https://hooks.example.com/"), public)
    assert [str(a) for a in found] == ["93.184.215.14", "2606:2800:21f:cb07::1"]
    private = table({"hooks.example.com": ["10.1.2.3"]})
    permissive = WebhookPolicy.of(["hooks.example.com"], allow_private=True)
    found = await permissive.resolve(permissive.parse("https://hooks.example.com/"), private)
    assert found == [ipaddress.IPv4Address("10.1.2.3")]
    # The flag is about private networks: loopback stays closed.
    loopback = table({"hooks.example.com": ["127.0.0.1"]})
    with pytest.raises(WebhookRefused, match="loopback"):
        await permissive.resolve(permissive.parse("https://hooks.example.com/"), loopback)


async def test_a_name_that_does_not_resolve_is_refused() -> None:
    with pytest.raises(WebhookRefused, match="does not resolve"):
        await POLICY.resolve(POLICY.parse("https://hooks.example.com/"), table({}))
