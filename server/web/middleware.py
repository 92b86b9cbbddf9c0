"""ASGI middleware: request ids, logs and metrics; the body size limit; plain-text JSON."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Sequence

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.observability.logs import bound
from server.observability.metrics import HTTP_DURATION, HTTP_REQUESTS

logger = logging.getLogger("alma.access")

REQUEST_ID_HEADER = "x-request-id"
_GOOD_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_QUIET_PATHS = frozenset({"/metrics", "/health", "/ready"})


class RequestContext:
    """Give every request an id, put it on its log lines and its answer; log and count it.

    A caller's own `X-Request-ID` is kept when it is a plausible id, so one id can
    follow a request through a proxy into ALMA's logs.
    """

    def __init__(self, app: ASGIApp) -> None:
        """Wrap `app`."""
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the request inside its logging context."""
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        given = (
            dict(scope.get("headers") or []).get(REQUEST_ID_HEADER.encode(), b"").decode("latin-1")
        )
        request_id = given if _GOOD_ID.match(given) else uuid.uuid4().hex
        with bound(request_id=request_id):
            if scope["type"] == "websocket":
                await self.app(scope, receive, send)
                return
            await self._http(scope, receive, send, request_id)

    async def _http(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers") or [])
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope.get("method", "")
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            HTTP_DURATION.labels(method, route).observe(elapsed)
            if scope.get("path") not in _QUIET_PATHS or status >= 400:
                logger.info(
                    "%s %s %d %.1f ms", method, scope.get("path"), status, elapsed * 1000,
                    extra={"status": status, "duration_ms": round(elapsed * 1000, 2)},
                )  # fmt: skip


class BodyLimit:
    """Refuse HTTP bodies over `limit` bytes with 413, naming the limit.

    A declared `Content-Length` is checked before the body is read. A body sent without
    one (chunked) is read here, up to the limit, before the endpoint sees it: refusing
    it from inside the endpoint's own read would reach the client as FastAPI's 400
    "error parsing the body". Bodies are small JSON documents, so holding one is cheap.
    """

    def __init__(self, app: ASGIApp, *, limit: int) -> None:
        """Wrap `app`."""
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, or answer 413."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            if declared.isdigit() and int(declared) > self.limit:
                await self._refuse(send, int(declared))
                return
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                # The client left before its body was whole: nothing to answer.
                return
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.limit:
                await self._refuse(send, seen)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send, size: int) -> None:
        body = json.dumps(
            {
                "detail": f"request body of {size} bytes or more is over the limit of "
                f"{self.limit} bytes (ALMA_MAX_BODY_BYTES)"
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class PlainTextJson:
    """Read `text/plain` request bodies as JSON.

    LangGraph Studio sends its JSON bodies as `text/plain;charset=UTF-8`, which spares
    the browser a CORS preflight; LangGraph's server reads any body as JSON. FastAPI
    reads a body as JSON only when it says so, so such requests are relabelled.
    """

    def __init__(self, app: ASGIApp) -> None:
        """Wrap `app`."""
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, a plain-text body labelled as JSON."""
        if scope["type"] == "http":
            headers = scope.get("headers") or []
            if any(name == b"content-type" and _is_plain_text(value) for name, value in headers):
                scope = {**scope, "headers": [
                    (name, b"application/json" if name == b"content-type" else value)
                    for name, value in headers
                ]}  # fmt: skip
        await self.app(scope, receive, send)


def _is_plain_text(content_type: bytes) -> bool:
    return content_type.split(b";", 1)[0].strip().lower() == b"text/plain"


LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _hostname(host: str) -> str:
    """`example.com:8000` → `example.com`; `[::1]:8000` → `::1`."""
    if host.startswith("["):
        return host[1:].split("]", 1)[0].lower()
    return host.rsplit(":", 1)[0].lower() if host.count(":") == 1 else host.lower()


class KeylessGuard:
    """Without API keys, only this machine's own pages and clients may reach the service.

    Two ways a web page on another site could otherwise use a development server: a
    cross-site `POST` with a `text/plain` body (no preflight, so CORS never asks), and a
    host name of its own rebound to this machine's address (same-origin to the browser).
    A request naming a host that is not allowed is refused, and so is a state-changing
    request from a browser page on an origin other than the service's own or a
    configured one. Clients that are not browsers send no `Origin` and pass.
    """

    def __init__(
        self, app: ASGIApp, *, hosts: frozenset[str] | None, origins: Sequence[str]
    ) -> None:
        """Answer only `hosts` (any, if `None`) and unsafe requests from `origins`."""
        self.app = app
        self.hosts = hosts
        self.origins = list(origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse what a foreign page could send; pass the rest on."""
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        host = headers.get("host", "")
        if self.hosts is not None and _hostname(host) not in self.hosts:
            await self._refuse(scope, receive, send, "host name not allowed (ALMA_ALLOWED_HOSTS)")
            return
        origin = headers.get("origin")
        unsafe = scope["type"] == "http" and scope["method"] not in _SAFE_METHODS
        if unsafe and origin is not None and not _same_or_listed(origin, host, self.origins):
            await self._refuse(scope, receive, send, "origin not allowed (ALMA_CORS_ORIGINS)")
            return
        await self.app(scope, receive, send)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, reason: str) -> None:
        if scope["type"] == "websocket":
            # Before the handshake is accepted, a close is an HTTP 403.
            await send({"type": "websocket.close", "code": 1008, "reason": reason})
            return
        await JSONResponse({"detail": reason}, status_code=403)(scope, receive, send)


def _same_or_listed(origin: str, host: str, listed: Sequence[str]) -> bool:
    return origin in (f"http://{host}", f"https://{host}") or origin in listed


def keyless_hosts(bound_to: str, allowed: Sequence[str]) -> frozenset[str] | None:
    """The host names a keyless server answers; `None` for any.

    Loopback names and `allowed`, when it is bound to loopback or `allowed` is set.
    """
    loopback = bound_to in LOOPBACK_NAMES or bound_to.startswith("127.")
    if not loopback and not allowed:
        return None
    return LOOPBACK_NAMES | {name.lower() for name in allowed}
