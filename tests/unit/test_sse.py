"""Server-Sent Event frames, and heartbeats while a stream is quiet."""

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import server
from server.web.sse import HEARTBEAT, frame, with_heartbeats

SERVER = Path(server.__file__).parent


def test_frames_are_crlf_lines_with_an_optional_id() -> None:
    assert frame("values", b'{"a":1}') == b'event: values\r\ndata: {"a":1}\r\n\r\n'
    assert frame("values", b"{}", "7") == b"event: values\r\ndata: {}\r\nid: 7\r\n\r\n"


async def test_a_quiet_source_gets_heartbeats_and_its_chunks_in_order() -> None:
    release = asyncio.Event()
    closed = asyncio.Event()

    async def source() -> AsyncIterator[bytes]:
        try:
            await release.wait()
            yield b"one"
            yield b"two"
        finally:
            closed.set()

    stream = with_heartbeats(source(), every=0.01)
    assert await anext(stream) == HEARTBEAT
    assert await anext(stream) == HEARTBEAT  # still quiet: beats go on
    release.set()
    rest = [chunk async for chunk in stream]
    assert [chunk for chunk in rest if chunk != HEARTBEAT] == [b"one", b"two"]
    assert closed.is_set()


async def test_a_consumer_that_stops_early_closes_the_source() -> None:
    closed = asyncio.Event()

    async def endless() -> AsyncIterator[bytes]:
        try:
            while True:
                yield b"x"
        finally:
            closed.set()

    stream = with_heartbeats(endless(), every=10, beat=b"\n")
    assert await anext(stream) == b"x"
    await stream.aclose()  # type: ignore[attr-defined]
    assert closed.is_set()


async def test_a_consumer_that_leaves_mid_wait_closes_the_source_without_an_error() -> None:
    # A client disconnecting while the source is between chunks: the pending read must be
    # finished before the source is closed, or closing it raises "already running".
    closed = asyncio.Event()

    async def slow() -> AsyncIterator[bytes]:
        try:
            await asyncio.Event().wait()
            yield b"never"
        finally:
            closed.set()

    stream = with_heartbeats(slow(), every=0.01)
    assert await anext(stream) == HEARTBEAT
    await stream.aclose()  # type: ignore[attr-defined]
    assert closed.is_set()


def test_every_event_stream_of_the_service_is_framed_in_one_place() -> None:
    # Two framings (LF in one stream, CRLF in another) once drifted apart: a frame is
    # written by `server.web.sse.frame` only.
    framed_by_hand = [
        path.relative_to(SERVER.parent)
        for path in SERVER.rglob("*.py")
        if path.name != "sse.py" and re.search(r"""b?["']data: """, path.read_text())
    ]
    assert framed_by_hand == []
