"""uvicorn's HTTP protocol with Nagle's algorithm off on every connection it accepts.

asyncio turns Nagle off (`TCP_NODELAY`) only on sockets that say they are TCP. With
`--workers`, uvicorn binds the listening socket itself without saying so, and every
connection its workers accept inherits that: a response's second small write (a body
after its headers, the next WebSocket frame) then waits for the client's ACK of the
first, which Linux delays 40 ms. One process is not affected (asyncio binds its socket).
uvicorn#3149 (https://github.com/Kludex/uvicorn/issues/3149); until a release fixes it,
ALMA sets the option on each connection.
"""

from __future__ import annotations

import asyncio
import socket

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

TCP_FAMILIES = (socket.AF_INET, socket.AF_INET6)


class NoDelayHttpToolsProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` (uvicorn's default with httptools installed), without Nagle."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Turn Nagle's algorithm off, then serve the connection as uvicorn does."""
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in TCP_FAMILIES:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)
