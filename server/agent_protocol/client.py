"""A client of ALMA's streaming protocol over one WebSocket: commands out; answers and events in.

`alma chat --url`, the latency benchmark and the tests speak to a running server through it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from server.engine.events import run_end, run_started


class CommandError(Exception):
    """The server answered a command with a protocol error."""

    def __init__(self, answer: dict[str, Any]) -> None:
        super().__init__(f"{answer.get('error')}: {answer.get('message')}")
        self.code: str = str(answer.get("error"))
        self.answer = answer


class ProtocolClient:
    """One WebSocket to `/threads/{id}/stream/events`.

    A reader task files answers by command id and queues events in arrival order; the
    queue ends with `None` when the connection closes.
    """

    def __init__(self, websocket: ClientConnection) -> None:
        """Start reading `websocket`."""
        self.websocket = websocket
        self.events: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.close_code: int | None = None
        self.close_reason = ""
        self._answers: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._next_id = 0
        self.started: set[str] = set()
        """The runs this client started: only their ends end `until_terminal`."""
        self._resuming = False
        """An answer was sent: the next run to start is this client's resume."""
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self.websocket:
                message = orjson.loads(raw)
                if message.get("type") == "event":
                    resumed = run_started(message) if self._resuming else None
                    if resumed:
                        # `input.respond` answers without a run id: its run is known
                        # by its first event.
                        self._resuming = False
                        self.started.add(resumed)
                    self.events.put_nowait(message)
                elif message.get("id") in self._answers:
                    self._answers.pop(message["id"]).set_result(message)
        except ConnectionClosed:
            pass
        finally:
            self.close_code = self.websocket.close_code
            self.close_reason = self.websocket.close_reason or ""
            for answer in self._answers.values():
                # Unanswered: the caller hears why (a key refused, the server stopping).
                answer.set_exception(self._closed())
            self._answers.clear()
            self.events.put_nowait(None)

    def _closed(self) -> ConnectionError:
        return ConnectionError(
            f"the server closed the connection ({self.close_code}: {self.close_reason})"
        )

    async def command(self, method: str, timeout: float = 30, **params: Any) -> dict[str, Any]:
        """Send a command and return the server's answer, success or error.

        Raises:
            ConnectionError: the connection closed before the answer came.
        """
        if self._reader.done():
            raise self._closed()
        self._next_id += 1
        answer = asyncio.get_running_loop().create_future()
        self._answers[self._next_id] = answer
        message = {"id": self._next_id, "method": method, "params": params}
        try:
            await self.websocket.send(orjson.dumps(message).decode())
        except ConnectionClosed as exc:
            self._answers.pop(self._next_id, None)
            raise self._closed() from exc
        return await asyncio.wait_for(answer, timeout=timeout)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send a command and return its result.

        Raises:
            CommandError: when the server answers with an error.
        """
        answer = await self.command(method, **params)
        if answer.get("type") != "success":
            raise CommandError(answer)
        result: dict[str, Any] = answer.get("result") or {}
        return result

    async def subscribe(self, *channels: str, since: int | None = None) -> dict[str, Any]:
        """Subscribe to channels (default lifecycle and messages); `since` resumes."""
        params: dict[str, Any] = {"channels": list(channels or ("lifecycle", "messages"))}
        if since is not None:
            params["since"] = since
        return await self.command("subscription.subscribe", **params)

    async def start(self, text: str, **params: Any) -> str:
        """Start a run of the manager on one user message; its run id.

        Raises:
            CommandError: when the server refuses the run.
        """
        result = await self.call(
            "run.start",
            assistant_id="manager",
            input={"messages": [{"role": "user", "content": text}]},
            **params,
        )
        run_id: str = result["run_id"]
        self.started.add(run_id)
        return run_id

    async def respond(self, interrupt_id: str, response: Any, namespace: list[str]) -> None:
        """Answer an interrupt (`input.requested`), which resumes the thread in a new run.

        Raises:
            CommandError: when the server refuses the answer.
        """
        self._resuming = True
        try:
            await self.call(
                "input.respond", interrupt_id=interrupt_id, response=response, namespace=namespace
            )
        except BaseException:
            self._resuming = False
            raise

    async def next_event(self, timeout: float | None = 30) -> dict[str, Any] | None:
        """The next event, or `None` once the connection has closed."""
        return await asyncio.wait_for(self.events.get(), timeout)

    def ends_run(self, event: Mapping[str, Any]) -> bool:
        """Whether `event` ends a run this client started (any run, if it started none).

        A thread's log also holds other runs' ends, replayed or re-logged: none of those
        is one of this client's.
        """
        end = run_end(event)
        return end is not None and (not self.started or end.run_id in self.started)

    async def until_terminal(self, timeout: float = 60) -> list[dict[str, Any]]:
        """Events up to and including the end of the run (see `ends_run`)."""
        collected: list[dict[str, Any]] = []
        while True:
            event = await self.next_event(timeout)
            if event is None:
                return collected
            collected.append(event)
            if self.ends_run(event):
                return collected

    async def aclose(self) -> None:
        """Stop reading and close the connection."""
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


_SCHEMES = (("https://", "wss://"), ("http://", "ws://"))


def stream_url(base_url: str, thread_id: str) -> str:
    """The thread's WebSocket URL from a server's base URL (`http(s)://` or `ws(s)://`)."""
    base = base_url.rstrip("/")
    for http, ws in _SCHEMES:
        if base.startswith(http):
            base = ws + base.removeprefix(http)
    return f"{base}/threads/{thread_id}/stream/events"


def http_url(base_url: str) -> str:
    """A server's HTTP base URL from its base URL (`http(s)://` or `ws(s)://`)."""
    base = base_url.rstrip("/")
    for http, ws in _SCHEMES:
        if base.startswith(ws):
            base = http + base.removeprefix(ws)
    return base


@asynccontextmanager
async def open_thread(
    base_url: str, thread_id: str, **options: Any
) -> AsyncIterator[ProtocolClient]:
    """Connect to a thread's event stream; `options` go to `websockets.connect`."""
    async with connect(stream_url(base_url, thread_id), **options) as websocket:
        client = ProtocolClient(websocket)
        try:
            yield client
        finally:
            await client.aclose()
