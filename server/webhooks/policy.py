"""Which webhook URLs a run may call: only hosts the operator allows, never inward.

A webhook makes the server send a request wherever a caller says; unchecked, that is
a way into the server's own network (its loopback, a cloud's metadata address, the
private services beside it). So a URL is checked twice: when the run is created
(`parse` and `resolve`, so the caller hears at once) and again when it is called
(`resolve`, whose addresses the call then connects to: a name that resolves elsewhere
by then — DNS rebinding — is caught, and cannot change between check and call).

The rules: `http`/`https` only; no credentials in the URL; the host must be on the
operator's list (`ALMA_WEBHOOK_ALLOWED_HOSTS`, exact names or `*.example.com`); a host
written as an address must be written the one canonical way (`127.1`, `0x7f.1` or
`2130706433` are refused, not guessed at); and every address the host resolves to must
be public — private networks only with `ALMA_WEBHOOK_ALLOW_PRIVATE`, and loopback,
link-local or other special addresses only when the operator lists that very address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""Resolves a host name (and port) to its addresses, as text."""

SETTING = "ALMA_WEBHOOK_ALLOWED_HOSTS"
MAX_URL_CHARS = 4096
_NAME = re.compile(r"^[a-z0-9_-]+(\.[a-z0-9_-]+)*$")


class WebhookRefused(ValueError):
    """A webhook URL the policy does not let the server call; the message says why."""


@dataclass(frozen=True)
class Target:
    """A webhook URL that passed the policy's static checks."""

    url: str
    scheme: str
    host: str
    """Lower case, without a trailing dot; an address in its canonical form."""
    port: int
    literal: IPAddress | None
    """The address, when the URL names one instead of a host name."""


async def system_resolver(host: str, port: int) -> Sequence[str]:
    """`host`'s addresses as the system resolves them."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _canonical_entry(entry: str) -> str:
    entry = entry.strip().lower().removesuffix(".")
    bare = entry.removeprefix("[").removesuffix("]")
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        return entry


@dataclass(frozen=True)
class WebhookPolicy:
    """The operator's rules for webhook URLs."""

    allowed_hosts: frozenset[str] = frozenset()
    allow_private: bool = False

    @classmethod
    def of(cls, hosts: Iterable[str], *, allow_private: bool = False) -> WebhookPolicy:
        """The policy allowing `hosts` (names, `*.domain` patterns or addresses)."""
        return cls(frozenset(_canonical_entry(h) for h in hosts if h.strip()), allow_private)

    @property
    def enabled(self) -> bool:
        """Whether any webhook can be called at all."""
        return bool(self.allowed_hosts)

    def parse(self, url: str) -> Target:
        """`url` as a target, if its form and host pass.

        Raises:
            WebhookRefused: saying what is wrong with it.
        """
        if not self.enabled:
            raise WebhookRefused(
                f"webhooks are off on this server: the operator allows no host for them ({SETTING})"
            )
        if len(url) > MAX_URL_CHARS:
            raise WebhookRefused(f"the webhook URL is longer than {MAX_URL_CHARS} characters")
        # Parsers disagree on these (a backslash is a slash to browsers and WHATWG):
        # refusing them leaves no room for two readings of one URL.
        if any(ch.isspace() or ord(ch) < 0x20 or ch == "\\" for ch in url) or not url.isascii():
            raise WebhookRefused("the webhook URL has spaces, control or non-ASCII characters")
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.netloc:
            raise WebhookRefused("a webhook must be an absolute http:// or https:// URL")
        if "@" in parts.netloc:
            raise WebhookRefused("a webhook URL may not carry credentials (user@host)")
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError as exc:
            raise WebhookRefused("the webhook URL's port is not a port number") from exc
        host, literal = _host_of(parts.netloc, parts.hostname or "")
        if not self._listed(host):
            raise WebhookRefused(
                f"webhook host {host!r} is not one the operator allows ({SETTING})"
            )
        if literal is not None:
            self.check_address(literal, host, listed=True)
        return Target(url=url, scheme=scheme, host=host, port=port, literal=literal)

    def _listed(self, host: str) -> bool:
        if host in self.allowed_hosts:
            return True
        return any(
            entry.startswith("*.") and host.endswith(entry[1:]) for entry in self.allowed_hosts
        )

    def check_address(self, address: IPAddress, host: str, *, listed: bool = False) -> None:
        """Refuse `address` (one of `host`'s) unless the server may call it.

        `listed`: the URL names the address itself, and the operator listed it — the
        one way to a special address. A name resolving to it does not count: the
        operator allowed the address, not whatever name points there.

        Raises:
            WebhookRefused: naming the kind of address.
        """
        if listed:
            return
        mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
        seen = mapped or address
        kind = _special_kind(seen)
        if kind is None:
            return
        if kind == "private" and self.allow_private:
            return
        shown = host if host == str(address) else f"{host} ({address})"
        raise WebhookRefused(
            f"webhook host {shown} is a {kind} address, which webhooks may not reach; an "
            f"operator may allow one by listing the address itself in {SETTING}"
            + (" or private networks with ALMA_WEBHOOK_ALLOW_PRIVATE" if kind == "private" else "")
        )

    async def resolve(
        self, target: Target, resolver: Resolver = system_resolver
    ) -> list[IPAddress]:
        """The addresses to call `target` at: every one the host resolves to, checked.

        Raises:
            WebhookRefused: when the host does not resolve, or any address is refused.
        """
        if target.literal is not None:
            return [target.literal]
        try:
            found = await resolver(target.host, target.port)
        except OSError as exc:
            raise WebhookRefused(f"webhook host {target.host!r} does not resolve") from exc
        addresses = [ipaddress.ip_address(text.split("%", 1)[0]) for text in found]
        if not addresses:
            raise WebhookRefused(f"webhook host {target.host!r} does not resolve")
        # Every address, not the first: a client may connect to any of them.
        for address in addresses:
            self.check_address(address, target.host)
        return addresses


def _host_of(netloc: str, hostname: str) -> tuple[str, IPAddress | None]:
    """The URL's host, canonical, and its address if it is one."""
    if netloc.startswith("["):
        if "%" in hostname:
            raise WebhookRefused("a webhook URL may not name an IPv6 zone")
        try:
            return str(ipaddress.IPv6Address(hostname)), ipaddress.IPv6Address(hostname)
        except ValueError as exc:
            raise WebhookRefused("the webhook URL's IPv6 address is not valid") from exc
    host = hostname.removesuffix(".")
    try:
        address = ipaddress.IPv4Address(host)
    except ValueError:
        address = None
    if address is not None:
        return str(address), address
    if _numeric(host):
        raise WebhookRefused(
            f"webhook host {host!r} is an address in a shorthand form; write it as four "
            "decimal numbers (a.b.c.d)"
        )
    if not _NAME.match(host):
        raise WebhookRefused(f"webhook host {host!r} is not a host name")
    return host, None


def _numeric(host: str) -> bool:
    """Whether resolvers would read `host` as an IPv4 address (`127.1`, `0x7f.1`, `017.1`)."""
    try:
        socket.inet_aton(host)
    except OSError:
        # A last label of digits or hex is an address to a URL parser (WHATWG), even
        # where inet_aton gives up (too many parts, a number too big).
        last = host.rsplit(".", 1)[-1]
        return bool(re.fullmatch(r"[0-9]+|0x[0-9a-f]*", last))
    return True


def _special_kind(address: IPAddress) -> str | None:
    """What makes `address` unfit for a webhook, or None for a public address."""
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
    )
    for kind, matched in checks:
        if matched:
            return kind
    if address.is_private:
        # Documentation, benchmarking and shared (carrier-grade NAT) ranges count too.
        return "private"
    return None if address.is_global else "non-public"
