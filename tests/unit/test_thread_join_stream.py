"""A thread's join stream read from the log page by page, on process memory."""

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from server.app import create_app
from server.engine.events import run_end
from server.langgraph_api.run_events import sse_frames
from server.langgraph_api.thread_stream import (
    UnknownStreamMode,
    thread_frames,
    thread_stream_modes,
)
from server.services import Services
from server.settings import Settings
from tests.utils.local import LocalClient, until_runs_end

QUEUE = 16
"""The smallest subscription queue: a run's events fill it several times over."""
STORY = {
    "assistant_id": "manager",
    "input": {"messages": [{"role": "user", "content": "Write a haiku about rivers"}]},
    "context": {"route": "creative"},
    "stream_mode": ["values", "updates", "messages-tuple"],
    "stream_subgraphs": True,
}


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    settings = Settings(
        _env_file=None, redis_url=None, simulated_ttft=0, simulated_tokens_per_second=0,
        send_queue_size=QUEUE,
    )  # fmt: skip
    with LocalClient(create_app(settings)) as local:
        yield local


def frame_ids(client: TestClient, thread_id: str, since: int, runs: int) -> list[tuple[str, int]]:
    """`(event, id)` of the join stream's frames after `since`, to the `runs`-th run_done."""
    services: Services = client.app.state.services  # type: ignore[attr-defined]

    async def read() -> list[tuple[str, int]]:
        seen: list[tuple[str, int]] = []
        frames = thread_frames(services, thread_id, since, frozenset({"run_modes"}))
        left = runs
        async for chunk in frames:
            head = chunk.split(b"\r\n")
            event_id = next(line for line in head if line.startswith(b"id: "))
            seen.append((head[0].removeprefix(b"event: ").decode(), int(event_id[4:])))
            if b'"status":"run_done"' in chunk:
                left -= 1
                if left == 0:
                    await frames.aclose()
                    return seen
        raise AssertionError("the join stream ended")

    return client.portal.call(read)  # type: ignore[union-attr]


def logged(client: TestClient, thread_id: str) -> list[tuple[str, int]]:
    """What the join stream should send: each API event and each run's end, by `seq`."""
    services: Services = client.app.state.services  # type: ignore[attr-defined]
    events = client.portal.call(services.log.read, thread_id, 0, 100_000)  # type: ignore[union-attr]
    expected: list[tuple[str, int]] = []
    for event in events:
        if event["method"] == "api":
            expected.append((event["params"]["event"], event["seq"]))
        elif run_end(event) is not None:
            expected.append(("metadata", event["seq"]))
    return expected


def test_a_long_way_back_is_replayed_whole_past_the_subscription_queue(
    client: TestClient,
) -> None:
    thread_id = client.post("/threads", json={}).json()["thread_id"]
    for _ in range(2):
        assert client.post(f"/threads/{thread_id}/runs", json=STORY).status_code == 200
        until_runs_end(client)
    expected = logged(client, thread_id)
    assert len(expected) > 2 * QUEUE

    assert frame_ids(client, thread_id, 0, 2) == expected
    middle = expected[len(expected) // 2][1]
    assert frame_ids(client, thread_id, middle, 1) == [e for e in expected if e[1] > middle]


def test_modes_come_one_a_value_or_comma_separated_and_default_to_run_modes() -> None:
    assert thread_stream_modes([]) == {"run_modes"}
    assert thread_stream_modes(["lifecycle, state_update"]) == {"lifecycle", "state_update"}
    assert thread_stream_modes(["lifecycle", "run_modes"]) == {"lifecycle", "run_modes"}
    with pytest.raises(UnknownStreamMode, match="values"):
        thread_stream_modes(["run_modes,values"])


def _frame_id(chunk: bytes) -> int:
    return int(next(line for line in chunk.split(b"\r\n") if line.startswith(b"id: "))[4:])


def test_a_run_join_too_slow_for_its_queue_reads_the_rest_from_the_log(
    client: TestClient,
) -> None:
    """A join that falls behind a running run gets the rest from the log, not an error."""
    services: Services = client.app.state.services  # type: ignore[attr-defined]
    thread_id = client.post("/threads", json={}).json()["thread_id"]
    # Started in the background: the join below subscribes while it still goes.
    refined = {**STORY, "context": {"route": "creative", "refine": True}}

    async def join(run_id: str) -> list[int]:
        record = await services.run_records.get(thread_id, run_id)
        assert record is not None
        frames = sse_frames(services, record, None, None)
        first = await anext(frames)
        # The run goes on, and fills the join's queue, while the client reads nothing.
        run = services.runs.runs.get(run_id)
        if run is not None and run.task is not None:
            await run.task
        rest = [chunk async for chunk in frames]
        return [_frame_id(chunk) for chunk in (first, *rest)]

    run = client.post(f"/threads/{thread_id}/runs", json=refined).json()
    ids = client.portal.call(join, run["run_id"])  # type: ignore[union-attr]
    until_runs_end(client)
    events = client.portal.call(services.log.read, thread_id, 0, 100_000)  # type: ignore[union-attr]
    api = [event["seq"] for event in events if event["method"] == "api"]
    assert len(api) > 2 * QUEUE
    assert ids == [seq for seq in api if seq >= ids[0]]
