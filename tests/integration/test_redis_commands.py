"""What one run costs in Redis, counted by Redis itself, so that the cost cannot creep back.

One creative run through the agent protocol, on the app in process and a redis-server of
its own: every command Redis executed for it (its background upkeep left out), from the
start of the run to the last write of its end.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from loadtests.sidebyside import RedisCounters
from server.app import create_app
from server.settings import Settings
from tests.utils.local import LocalClient, until_runs_end
from tests.utils.redis_server import redis_server

pytestmark = pytest.mark.integration

MOST_COMMANDS = 40
"""Commands one creative run may cost: 39 measured on 2026-12-03, of which 2 are the
recall of the user's long-term memories, on by default (37 without; 402 at the start of
2026-12-02: a batch of events is one stream entry and batches are written at most every
`ALMA_EVENT_FLUSH_INTERVAL`; a run's steps are saved once, as it ends; the rate windows
are one script; a new thread is claimed with a SET; a protocol run's end is read from
its stream, not its checkpoint; TTLs restart once per run; a thread's checkpoints are
two keys, written by one script). Lower this as the cost comes down."""
POEM = {"role": "user", "content": "Write a short poem about rivers"}


def run_on(client: LocalClient, thread_id: str) -> None:
    start = {"id": 1, "method": "run.start",
             "params": {"assistant_id": "manager", "input": {"messages": [POEM]}}}  # fmt: skip
    assert client.post(f"/threads/{thread_id}/commands", json=start).is_success
    until_runs_end(client)


def test_one_creative_run_costs_a_bounded_number_of_redis_commands(tmp_path: Path) -> None:
    with redis_server(tmp_path) as server:
        # Batches are written by time as well as by need: flushed only by need here, the
        # count does not depend on how fast a loaded machine runs the graph.
        settings = Settings(
            _env_file=None, redis_url=server.url, simulated_ttft=0,
            simulated_tokens_per_second=0, event_flush_interval=1,
        )  # fmt: skip
        with LocalClient(create_app(settings)) as client:
            run_on(client, "t-warm")  # scripts loaded, connections made
            with redis.Redis(port=server.port) as counter:
                counter.config_resetstat()
            run_on(client, "t-counted")
            counted = RedisCounters.read(server.url)
    calls = counted.by_command
    total = counted.commands
    breakdown = sorted(calls.items(), key=lambda item: -item[1])
    assert total <= MOST_COMMANDS, breakdown
    assert calls.get("xadd", 0) >= 1, breakdown  # the run's events were logged, in batches
    assert "eval" not in calls, breakdown  # scripts go by their SHA1, not their source


MOST_STREAM_COMMANDS = 9
"""Commands opening an event stream on a new thread may cost, from the connection to its
close: 9 measured on 2026-12-03 (12 before a subscription read the end of the thread's
log once, instead of asking it apart whether the last run ended, where the newest run
started, where the log ends and what to replay). The SDKs open one or two a run."""


def subscribe_on(client: LocalClient, thread_id: str) -> None:
    subscribe = {"id": 1, "method": "subscription.subscribe",
                 "params": {"channels": ["lifecycle", "messages"]}}  # fmt: skip
    with client.websocket_connect(f"/threads/{thread_id}/stream/events") as socket:
        socket.send_json(subscribe)
        assert socket.receive_json()["type"] == "success"


def test_opening_an_event_stream_costs_a_bounded_number_of_redis_commands(
    tmp_path: Path,
) -> None:
    with redis_server(tmp_path) as server:
        settings = Settings(_env_file=None, redis_url=server.url)
        with LocalClient(create_app(settings)) as client:
            subscribe_on(client, "t-warm")  # scripts loaded, connections made
            with redis.Redis(port=server.port) as counter:
                counter.config_resetstat()
            subscribe_on(client, "t-counted")
            counted = RedisCounters.read(server.url)
    breakdown = sorted(counted.by_command.items(), key=lambda item: -item[1])
    assert counted.commands <= MOST_STREAM_COMMANDS, breakdown
