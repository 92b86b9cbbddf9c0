"""Who is calling: API keys (kept only as SHA-256 digests) and the owner they stand for.

A key comes as `Authorization: Bearer <key>` or `X-API-Key: <key>`; browsers, which
cannot set headers on a WebSocket, offer it as the subprotocol `alma-key.<key>`. Keys
never travel in URLs. With no keys configured (development only) every caller is the
owner `local`, and rate limits count per client address instead.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

KEY_SUBPROTOCOL = "alma-key."
"""Prefix of the WebSocket subprotocol that carries a key."""
SUBPROTOCOL = "alma"
"""The subprotocol the server answers with when a key came as one (never the key)."""
LOCAL_OWNER = "local"
_OWNER = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


class AuthError(Exception):
    """The caller gave no key, or one that is not configured."""


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller: the owner of what they create, and whom their limits count against."""

    owner: str
    limit_key: str


def digest(key: str) -> str:
    """The hex SHA-256 digest of a key, as configured in `ALMA_API_KEYS`."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key(owner: str) -> tuple[str, str]:
    """A fresh random key for `owner`, and the `ALMA_API_KEYS` entry that admits it.

    Raises:
        ValueError: for an owner name outside letters, digits and `_.@-`.
    """
    if not _OWNER.match(owner):
        raise ValueError(f"owner {owner!r} must be 1-64 letters, digits or _.@-")
    key = "alma_" + secrets.token_urlsafe(32)
    return key, f"{owner}:sha256:{digest(key)}"


class KeyRing:
    """Maps presented keys to owners; knows whether keys are required at all."""

    def __init__(self, owners_by_digest: Mapping[str, str]) -> None:
        """Admit the keys whose digests are given."""
        self._owners = dict(owners_by_digest)

    @property
    def required(self) -> bool:
        """Whether callers must present a key (any key is configured)."""
        return bool(self._owners)

    def identify(self, key: str | None, address: str) -> Principal:
        """The principal for a presented key (or none), calling from `address`.

        Raises:
            AuthError: a key is required and missing, or not one of the configured.
        """
        if not self.required:
            return Principal(owner=LOCAL_OWNER, limit_key=f"addr:{address}")
        if not key:
            raise AuthError("an API key is required (Authorization: Bearer <key>)")
        owner = self._owners.get(digest(key))
        if owner is None:
            raise AuthError("the API key is not valid")
        return Principal(owner=owner, limit_key=f"owner:{owner}")


def key_from_headers(headers: Mapping[str, str]) -> str | None:
    """The key in `Authorization: Bearer` or `X-API-Key`, if any."""
    authorization = headers.get("authorization", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return headers.get("x-api-key") or None


def key_from_subprotocols(offered: Iterable[str]) -> str | None:
    """The key a browser offered as the `alma-key.<key>` subprotocol, if any."""
    for protocol in offered:
        if protocol.startswith(KEY_SUBPROTOCOL):
            return protocol.removeprefix(KEY_SUBPROTOCOL) or None
    return None
