"""Fan-out of a thread's events to the subscriptions open on this process.

Events reach a thread's topic from a run on this process (straight from memory) or, for
a run on another process, from a tail that follows the thread's event log. A topic
publishes each `seq` once, so overlapping sources never duplicate an event.

Every subscription has a bounded queue. One that falls too far behind is ended with an
overflow notice rather than buffering without bound; its client resumes from the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from server.agent_protocol.messages import SubscribeParams, matches
from server.engine.events import Logged, is_terminal
from server.stores.event_log import EventLog

logger = logging.getLogger("alma.server")

TAIL_BLOCK_SECONDS = 5.0


class SlowConsumerError(Exception):
    """A subscription's queue filled up: the client must resume from its last `seq`."""

    def __init__(self, last_seq: int) -> None:
        super().__init__(f"client fell too far behind; resume with since={last_seq}")
        self.last_seq = last_seq


@dataclass(eq=False)
class Subscription:
    """One client's view of a thread: a filter, a bounded queue, and where it is."""

    id: str
    thread_id: str
    params: SubscribeParams
    queue: asyncio.Queue[Logged | None]
    delivered: int = 0
    """The `seq` of the last event handed to the client."""
    queued: int = 0
    """The highest `seq` queued: an event can reach a subscription from its replay and
    live (the log is written before fan-out), and must be sent once."""
    overflowed: bool = False
    on_overflow: Callable[[SlowConsumerError], None] | None = None
    """Told at once when the queue overflows: the consumer may be stuck in a send and
    never come back to read the queue."""
    _replaying: bool = True
    _backlog: list[Logged] = field(default_factory=list)

    def offer(self, event: Logged) -> None:
        """Take a live event, if it matches; mark overflow when the queue is full."""
        if self.overflowed or not matches(event, self.params):
            return
        if self._replaying:
            self._backlog.append(event)
            return
        if event["seq"] <= self.queued:
            return
        try:
            self.queue.put_nowait(event)
            self.queued = event["seq"]
        except asyncio.QueueFull:
            self.overflowed = True
            self.queue = asyncio.Queue(maxsize=1)
            self.queue.put_nowait(None)
            if self.on_overflow is not None:
                self.on_overflow(SlowConsumerError(self.delivered))

    def finish_replay(self, replayed: list[Logged]) -> None:
        """Queue the replayed events, then the live ones that came meanwhile, once each."""
        for event in replayed:
            if matches(event, self.params):
                self.queue.put_nowait(event)
            self.queued = max(self.queued, event["seq"])
        self._replaying = False
        backlog, self._backlog = self._backlog, []
        for event in backlog:
            self.offer(event)

    async def events(self) -> AsyncIterator[Logged]:
        """The subscription's events, until it ends.

        Raises:
            SlowConsumerError: when the client fell too far behind.
        """
        while True:
            event = await self.queue.get()
            if event is None:
                if self.overflowed:
                    raise SlowConsumerError(self.delivered)
                return
            self.delivered = event["seq"]
            yield event

    def close(self) -> None:
        """End the subscription's event stream."""
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(None)


@dataclass(eq=False)
class Topic:
    """The subscriptions of one thread on this process."""

    thread_id: str
    subscriptions: set[Subscription] = field(default_factory=set)
    published: int = 0
    tail: asyncio.Task[None] | None = None

    def publish(self, events: list[Logged]) -> None:
        """Hand new events to every subscription; events already published are skipped."""
        for event in events:
            if event["seq"] <= self.published:
                continue
            self.published = event["seq"]
            for subscription in list(self.subscriptions):
                subscription.offer(event)


class Broker:
    """The topics of this process, and the tails that follow runs on other processes."""

    def __init__(
        self,
        *,
        log: EventLog,
        queue_size: int,
        run_origin: Callable[[str], Awaitable[tuple[int, bool] | None]],
        on_orphan: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        """Create the broker.

        Args:
            log: The event log to replay and tail.
            queue_size: Most events a subscription may have waiting.
            run_origin: For a thread, `(first_seq, is_local)` of its active run, or `None`.
            on_orphan: Called for a thread whose followed run went quiet and lost its
                lease: its process died, and someone must write how the run ended.
        """
        self.log = log
        self.queue_size = queue_size
        self._run_origin = run_origin
        self._on_orphan = on_orphan
        self.topics: dict[str, Topic] = {}
        self._next_id = 0

    @property
    def subscription_count(self) -> int:
        """Open subscriptions on this process."""
        return sum(len(topic.subscriptions) for topic in self.topics.values())

    def publish(self, thread_id: str, events: list[Logged]) -> None:
        """Fan events of a local run out to this process's subscriptions."""
        topic = self.topics.get(thread_id)
        if topic is not None:
            topic.publish(events)

    async def subscribe(self, thread_id: str, params: SubscribeParams) -> Subscription:
        """Open a subscription: replay what it missed, then follow live events.

        With `since`, everything after that `seq` is replayed. Without it, the thread's
        newest run — running or ended — is replayed from its start, as LangGraph's server
        does: a client that subscribes once its `run.start` has answered (the official
        SDKs do) misses none of its run, even one that ended first.
        """
        self._next_id += 1
        subscription = Subscription(
            id=f"sub-{self._next_id}",
            thread_id=thread_id,
            params=params,
            queue=asyncio.Queue(maxsize=self.queue_size),
        )
        topic = self.topics.setdefault(thread_id, Topic(thread_id))
        topic.subscriptions.add(subscription)
        try:
            origin = await self._run_origin(thread_id)
            after = params.since
            replayed: list[Logged] | None = None
            if origin is None:
                # One read of the log's end answers the rest as a rule: whether the last
                # run ended, where the newest run started, and what to replay.
                recent = await self.log.tail(thread_id)
                if recent.unfinished and self._on_orphan is not None:
                    # No run holds the thread and its last run never ended (its process
                    # died): end it now, so this subscriber replays an ending, not silence.
                    await self._on_orphan(thread_id)
                    recent = await self.log.tail(thread_id)
                if after is None:
                    first = recent.latest_run_start()
                    if first is None and not recent.whole:
                        first = await self.log.latest_run_start(thread_id)  # a longer run
                    after = first - 1 if first else recent.last_seq
                replayed = recent.after(after)
            elif after is None:
                # A run holds the thread: its events are all there is to replay, and
                # reading from its start skips decoding the runs before it.
                after = origin[0] - 1
            if replayed is None:
                replayed = await self._read_all(thread_id, after)
            if origin and not origin[1]:
                self._ensure_tail(topic, max([after, *(e["seq"] for e in replayed)]))
        except BaseException:
            self.unsubscribe(subscription)
            raise
        if len(replayed) >= self.queue_size:
            # More to replay than the queue holds: let the client page through.
            replayed = replayed[: self.queue_size - 1]
        subscription.finish_replay(replayed)
        return subscription

    async def _read_all(self, thread_id: str, after: int) -> list[Logged]:
        events: list[Logged] = []
        while True:
            page = await self.log.read(thread_id, after, limit=1000)
            events.extend(page)
            if len(page) < 1000:
                return events
            after = page[-1]["seq"]

    def unsubscribe(self, subscription: Subscription) -> None:
        """Close a subscription; a topic with none left stops its tail and goes."""
        subscription.close()
        topic = self.topics.get(subscription.thread_id)
        if topic is None:
            return
        topic.subscriptions.discard(subscription)
        if not topic.subscriptions:
            if topic.tail is not None:
                topic.tail.cancel()
            del self.topics[subscription.thread_id]

    def follow_remote_run(self, thread_id: str, after: int) -> None:
        """A run started on another process: tail its events if anyone here listens."""
        topic = self.topics.get(thread_id)
        if topic is not None:
            self._ensure_tail(topic, after)

    def _ensure_tail(self, topic: Topic, after: int) -> None:
        if topic.tail is None or topic.tail.done():
            topic.tail = asyncio.create_task(self._tail(topic, after))

    async def _tail(self, topic: Topic, after: int) -> None:
        # Follows the log until the run ends; the topic drops anything already seen.
        cursor = max(after, topic.published)
        while topic.subscriptions:
            try:
                events = await self.log.wait(topic.thread_id, cursor, TAIL_BLOCK_SECONDS)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("event log tail of %s failed; retrying", topic.thread_id)
                await asyncio.sleep(1.0)
                continue
            if not events:
                await self._check_orphan(topic.thread_id)
                continue
            cursor = events[-1]["seq"]
            topic.publish(events)
            if any(is_terminal(e) for e in events):
                return

    async def _check_orphan(self, thread_id: str) -> None:
        if self._on_orphan is None:
            return
        try:
            if await self._run_origin(thread_id) is None:
                await self._on_orphan(thread_id)
        except Exception:
            logger.warning("could not check the run of thread %s", thread_id, exc_info=True)

    async def close(self) -> None:
        """End every subscription and tail (shutdown)."""
        for topic in list(self.topics.values()):
            for subscription in list(topic.subscriptions):
                self.unsubscribe(subscription)
