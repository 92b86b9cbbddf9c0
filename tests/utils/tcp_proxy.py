"""A TCP proxy on loopback whose connections a test can cut, as a network failure would."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from tests.utils.processes import free_port


@dataclass
class TcpProxy:
    """Forwards `port` to `target_port`; `cut()` drops every open connection at once."""

    port: int
    target_port: int
    loop: asyncio.AbstractEventLoop
    writers: set[asyncio.StreamWriter] = field(default_factory=set)
    cuts: int = 0

    def cut(self) -> int:
        """Abort every connection through the proxy (both sides); how many were cut."""
        done = threading.Event()
        count = 0

        def abort() -> None:
            nonlocal count
            count = len(self.writers) // 2
            for writer in list(self.writers):
                writer.transport.abort()
            self.writers.clear()
            done.set()

        self.loop.call_soon_threadsafe(abort)
        done.wait(5)
        self.cuts += 1
        return count

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                "127.0.0.1", self.target_port
            )
        except OSError:
            writer.close()
            return
        self.writers |= {writer, upstream_writer}
        await asyncio.gather(
            self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer)
        )
        self.writers -= {writer, upstream_writer}


@contextmanager
def tcp_proxy(target_port: int) -> Iterator[TcpProxy]:
    """Run a proxy to `target_port` in a thread of its own for the block's duration."""
    loop = asyncio.new_event_loop()
    proxy = TcpProxy(port=free_port(), target_port=target_port, loop=loop)
    started = threading.Event()
    stop = asyncio.Event()

    async def serve() -> None:
        server = await asyncio.start_server(proxy._handle, "127.0.0.1", proxy.port)
        started.set()
        async with server:
            await stop.wait()
        for writer in proxy.writers:
            writer.transport.abort()
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    thread = threading.Thread(target=lambda: loop.run_until_complete(serve()), daemon=True)
    thread.start()
    started.wait(10)
    try:
        yield proxy
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=10)
        loop.close()
