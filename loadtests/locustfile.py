"""Locust users that speak the agent streaming protocol, over WebSocket and over HTTP/SSE.

Locust has no WebSocket user, so each run is reported to Locust's statistics by hand,
as requests named by what they measure: `connect`, `time to first token`, `full run`,
`resume`, `cancel`. The same users drive ALMA and `langgraph dev`.

`alma loadtest` (loadtests/run.py) picks the scenario through `ALMA_LOADTEST_SCENARIO`:
`connections` opens idle sockets (`ALMA_LOADTEST_IDLE` of them) alone first, then adds
the active users beside them; `spike` shapes the load from 0 to `ALMA_LOADTEST_USERS`
users at once. When the load reaches a step, a line goes to `ALMA_LOADTEST_MARKS`.
"""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from typing import Any, NoReturn

import websocket
from locust import HttpUser, LoadTestShape, User, between, constant, events, task
from locust.env import Environment
from locust.exception import StopUser

from loadtests.processes import raise_descriptor_limit
from loadtests.ws import ProtocolFailure, RunTiming, ThreadSocket

SCENARIO = os.environ.get("ALMA_LOADTEST_SCENARIO", "smoke")
CANCEL_DEADLINE = 15.0
"""Seconds a cancelled run may take to end before the cancel counts as failed."""
IDLE_READ_SECONDS = 5.0
"""How long an idle tab's read waits before it reads again: short enough that a stopping
run is not held up long by it (the tab is never without a read), long enough that 10,000
tabs do not keep Locust busy waking up 10,000 times a second."""
THINK = (float(os.environ.get("ALMA_LOADTEST_THINK_MIN", "1")),
         float(os.environ.get("ALMA_LOADTEST_THINK_MAX", "3")))  # fmt: skip

CREATIVE = [
    "Write a haiku about rivers",
    "Write a short poem about the sea at night",
    "Tell a two-line story about a lost key",
    "Write a limerick about a lighthouse keeper",
]
ANALYTICAL = [
    "Compare Redis and PostgreSQL for a job queue, step by step",
    "Analyse the trade-offs of microservices versus a monolith",
    "Explain why quicksort is faster than mergesort in practice, step by step",
]
FOLLOW_UPS = ["Make it shorter", "Now explain the main idea in one sentence"]


# Every user holds a socket; Locust raises the soft limit only as far as 10,000.
raise_descriptor_limit(0)


def _fire(
    environment: Environment,
    kind: str,
    name: str,
    started: float,
    ended: float,
    *,
    length: int = 0,
    exception: BaseException | None = None,
) -> None:
    environment.events.request.fire(  # type: ignore[no-untyped-call]
        request_type=kind,
        name=name,
        response_time=(ended - started) * 1000,
        response_length=length,
        exception=exception,
        context={},
    )


def _report_run(environment: Environment, kind: str, timing: RunTiming) -> None:
    """A finished run, as Locust requests: its first token and its whole length."""
    if timing.first_token is not None:
        _fire(environment, kind, "time to first token", timing.started, timing.first_token)
    assert timing.ended is not None
    _fire(environment, kind, "full run", timing.started, timing.ended, length=timing.tokens)


class StreamingUser(User):
    """A person in conversation over WebSocket: runs, follow-ups, cancels, reconnects."""

    abstract = True
    wait_time = between(*THINK)

    @property
    def _host(self) -> str:
        return self.host or "http://127.0.0.1:8000"

    def _connect(self, thread_id: str) -> ThreadSocket:
        started = time.perf_counter()
        try:
            socket = ThreadSocket(self._host, thread_id)
            socket.subscribe()
        except Exception as exc:
            _fire(self.environment, "WS", "connect", started, time.perf_counter(), exception=exc)
            raise
        _fire(self.environment, "WS", "connect", started, time.perf_counter())
        return socket

    def _run(self, socket: ThreadSocket, text: str) -> RunTiming:
        timing = RunTiming(started=time.perf_counter())
        try:
            socket.start(text)
            socket.follow(timing)
            if timing.outcome != "completed":
                raise ProtocolFailure(f"run ended {timing.outcome} ({timing.code})")
        except Exception as exc:
            _fire(self.environment, "WS", "full run", timing.started,
                  time.perf_counter(), exception=exc)  # fmt: skip
            raise
        self._report(timing)
        return timing

    def _report(self, timing: RunTiming) -> None:
        _report_run(self.environment, "WS", timing)

    def _conversation(self, turns: list[str]) -> None:
        socket = self._connect(str(uuid.uuid4()))
        try:
            for text in turns:
                self._run(socket, text)
        finally:
            socket.close()


class ConversationUser(StreamingUser):
    """The WebSocket user: creative and analytical work, follow-ups on a thread.

    Only what every server speaking the protocol offers: comparisons use this one.
    """

    weight = 3

    @task(4)
    def creative(self) -> None:
        """One creative answer on a new thread."""
        self._conversation([random.choice(CREATIVE)])

    @task(2)
    def analytical(self) -> None:
        """One analytical answer on a new thread."""
        self._conversation([random.choice(ANALYTICAL)])

    @task(2)
    def multi_turn(self) -> None:
        """A poem, then follow-ups on the same thread."""
        self._conversation([random.choice(CREATIVE), *FOLLOW_UPS])


class ChatUser(ConversationUser):
    """The WebSocket user of ALMA's own runs: also cancels, and reconnects mid-answer."""

    @task(1)
    def cancel(self) -> None:
        """Start an analysis and stop it after its first tokens."""
        socket = self._connect(str(uuid.uuid4()))
        try:
            run_id = socket.start(random.choice(ANALYTICAL))
            timing = socket.follow(RunTiming(started=time.perf_counter()), until_tokens=5)
            started = time.perf_counter()
            socket.command("run.cancel", run_id=run_id)
            # A cancelled run ends at once; waiting out the socket's long timeout would
            # outlast the load run and leave the task unrecorded instead of failed.
            socket.socket.settimeout(CANCEL_DEADLINE)
            socket.follow(timing)
            if timing.outcome == "completed" or timing.ended is None:
                raise ProtocolFailure(f"the cancelled run ended {timing.outcome!r}")
            _fire(self.environment, "WS", "cancel", started, timing.ended)
        except Exception as exc:
            _fire(self.environment, "WS", "cancel", time.perf_counter(), time.perf_counter(),
                  exception=exc)  # fmt: skip
        finally:
            socket.close()

    @task(1)
    def resume(self) -> None:
        """Drop the connection mid-answer, reconnect, resume; no event lost or repeated."""
        thread_id = str(uuid.uuid4())
        socket = self._connect(thread_id)
        timing = RunTiming(started=time.perf_counter())
        socket.start(random.choice(ANALYTICAL))
        socket.follow(timing, until_tokens=10)
        socket.drop()
        started = time.perf_counter()
        try:
            again = ThreadSocket(self._host, thread_id)
            again.subscribe(since=timing.last_seq)
            seen = len(timing.seqs)
            socket = again
            socket.follow(timing)
            resumed = timing.seqs[seen:]
            if timing.outcome != "completed":
                raise ProtocolFailure(f"resumed run ended {timing.outcome} ({timing.code})")
            if resumed and resumed[0] <= timing.seqs[seen - 1]:
                raise ProtocolFailure("an event was repeated after resume")
            if timing.seqs != sorted(set(timing.seqs)):
                raise ProtocolFailure("events out of order or repeated across the reconnect")
        except Exception as exc:
            _fire(self.environment, "WS", "resume", started, time.perf_counter(), exception=exc)
            return
        finally:
            socket.close()
        assert timing.ended is not None
        _fire(self.environment, "WS", "resume", started, timing.ended, length=timing.tokens)


def _every_conversation(user: ConversationUser) -> None:
    user.creative()
    user.analytical()
    user.multi_turn()


def _every_request(user: ChatUser) -> None:
    # The rarer kinds first, so even a short run has one of each.
    user.cancel()
    user.resume()
    _every_conversation(user)


class ConversationSmokeUser(ConversationUser):
    """Each conversation task in turn, every time round: a short run covers them all."""


class SmokeUser(ChatUser):
    """Each task in turn, cancel and resume included (the `smoke` scenario)."""


# Set after the classes exist: Locust adds a base class's tasks to those a subclass
# declares, so `tasks = [...]` in the class body would leave the single round among
# the base's ten tasks, picked one time in eleven (a short run then missed cancels).
ConversationSmokeUser.tasks = [_every_conversation]
SmokeUser.tasks = [_every_request]


class IdleSocketUser(StreamingUser):
    """An open tab: a WebSocket subscribed to its thread, waiting for events.

    Like a browser's, it is always reading, so the server's pings get their pongs (the
    WebSocket client answers each as it reads); a socket that never read would be
    closed by the server after its first unanswered ping.
    """

    fixed_count = int(os.environ.get("ALMA_LOADTEST_IDLE", "0"))
    wait_time = constant(0)

    def on_start(self) -> None:
        """Open the socket and subscribe."""
        started = time.perf_counter()
        try:
            self.socket = ThreadSocket(self._host, str(uuid.uuid4()), timeout=300)
            self.socket.subscribe()
        except Exception as exc:
            _fire(self.environment, "WS", "idle connect", started, time.perf_counter(),
                  exception=exc)  # fmt: skip
            raise
        _fire(self.environment, "WS", "idle connect", started, time.perf_counter())
        self.socket.socket.settimeout(IDLE_READ_SECONDS)

    @task
    def stay(self) -> None:
        """Read, as an open tab does: pings are answered; no events come to an idle thread."""
        try:
            self.socket.socket.recv()
        except websocket.WebSocketTimeoutException:
            return
        except (websocket.WebSocketException, OSError) as exc:
            self._lost(exc)
        if not self.socket.socket.connected:  # the read was the server's close frame
            self._lost(ProtocolFailure("the server closed an idle socket"))

    def _lost(self, exc: BaseException) -> NoReturn:
        # A failure, once: reading the closed socket again would fail at once, round and
        # round, for the rest of the run.
        now = time.perf_counter()
        _fire(self.environment, "WS", "idle socket held", now, now, exception=exc)
        raise StopUser

    def on_stop(self) -> None:
        """Close the socket."""
        self.socket.close()


class SseUser(HttpUser):
    """The HTTP user: events as Server-Sent Events, commands as plain HTTP posts."""

    weight = 1
    wait_time = between(*THINK)

    @task
    def run_over_sse(self) -> None:
        """One answer, followed as Server-Sent Events."""
        thread_id = str(uuid.uuid4())
        text = random.choice([*CREATIVE, *ANALYTICAL])
        with self.client.post(
            f"/threads/{thread_id}/stream/events",
            json={"channels": ["lifecycle", "messages"]},
            stream=True,
            name="SSE connect",
            catch_response=True,
        ) as stream:
            timing = RunTiming(started=time.perf_counter())
            self.client.post(
                f"/threads/{thread_id}/commands",
                json={"id": 1, "method": "run.start", "params": {
                    "assistant_id": "manager",
                    "input": {"messages": [{"role": "user", "content": text}]}}},
                name="HTTP run.start",
            )  # fmt: skip
            try:
                _follow_sse(stream.iter_lines(), timing)
                if timing.outcome != "completed":
                    raise ProtocolFailure(f"run ended {timing.outcome} ({timing.code})")
            except Exception as exc:
                stream.failure(exc)
                _fire(self.environment, "SSE", "full run", timing.started,
                      time.perf_counter(), exception=exc)  # fmt: skip
                return
            stream.success()
        _report_run(self.environment, "SSE", timing)


def _follow_sse(lines: Any, timing: RunTiming) -> None:
    for line in lines:
        if not line or not line.startswith(b"data: "):
            continue
        event = json.loads(line[6:])
        if event.get("type") == "error":
            raise ProtocolFailure(f"stream error: {event.get('message')}")
        if timing.observe(event):
            return


if SCENARIO == "spike":

    class Spike(LoadTestShape):
        """A quiet minute's worth of users, then everyone at once, then calm again."""

        users = int(os.environ.get("ALMA_LOADTEST_USERS", "500"))
        duration = float(os.environ.get("ALMA_LOADTEST_DURATION", "120"))

        def tick(self) -> tuple[int, float] | None:
            """Users and spawn rate now; `None` ends the run."""
            now: float = self.get_run_time()  # type: ignore[no-untyped-call]
            if now > self.duration:
                return None
            if now < self.duration * 0.2 or now > self.duration * 0.7:
                return max(1, self.users // 20), 10.0
            return self.users, float(self.users)  # all of them within a second


_SPAWNED: dict[int, float] = {}
"""Users running → when (`time.monotonic()`) the ramp to that many first completed."""


def _mark(mark: str, **fields: int) -> None:
    """Note for the load runner when the load reached a step (wall-clock time)."""
    path = os.environ.get("ALMA_LOADTEST_MARKS")
    if path:
        with open(path, "a") as marks:
            marks.write(json.dumps({"mark": mark, "at": time.time(), **fields}) + "\n")


@events.spawning_complete.add_listener  # type: ignore[untyped-decorator]
def _note_spawned(user_count: int, **_: Any) -> None:
    # Fired by the runner that dispatches users (never by a worker): one mark per step.
    if user_count not in _SPAWNED:
        _SPAWNED[user_count] = time.monotonic()
        _mark("spawned", users=user_count)


if SCENARIO == "connections":

    class Connections(LoadTestShape):
        """The idle sockets alone until they settle, then the active users beside them.

        Each step starts once the ramp before it has completed, however long it took: the
        idle sockets' memory is read with nothing else running, and the full load is held
        for `hold` seconds after the last user was spawned.
        """

        idle = int(os.environ.get("ALMA_LOADTEST_IDLE", "0"))
        users = int(os.environ.get("ALMA_LOADTEST_USERS", "0"))
        rate = float(os.environ.get("ALMA_LOADTEST_SPAWN_RATE", "100"))
        settle = float(os.environ.get("ALMA_LOADTEST_SETTLE", "0"))
        hold = float(os.environ.get("ALMA_LOADTEST_HOLD", "60"))
        loading = False

        def tick(self) -> tuple[int, float] | None:
            """Users and spawn rate now; `None` ends the run."""
            now = time.monotonic()
            alone = _SPAWNED.get(self.idle)
            if self.idle and (alone is None or now < alone + self.settle):
                return self.idle, self.rate
            if not self.loading:
                self.loading = True
                _mark("load")
            spawned = _SPAWNED.get(self.users)
            if spawned is None or now < spawned + self.hold:
                return self.users, self.rate
            _mark("end")
            return None


@events.quitting.add_listener  # type: ignore[untyped-decorator]
def _fail_on_any_error(environment: Environment, **_: Any) -> None:
    # A load run that lost a request, or whose users raised, is a failed run, whatever
    # the figures say.
    runner = environment.runner
    if environment.stats.total.num_failures > 0 or (runner is not None and runner.exceptions):
        environment.process_exit_code = 1
