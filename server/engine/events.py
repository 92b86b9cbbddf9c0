"""Protocol events: from LangGraph's v3 stream to the wire, numbered per thread."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from langchain_core.messages import BaseMessage
from langgraph.types import Overwrite
from pydantic import BaseModel

from nodes.errors import ErrorCode

Terminal = Literal["completed", "failed", "interrupted"]


def json_default(value: Any) -> Any:
    """JSON for what orjson cannot write itself: messages, models, dataclasses, sets."""
    if isinstance(value, BaseMessage):
        return value.model_dump()
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, Overwrite):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, set | frozenset):
        return list(value)
    return repr(value)


def dumps(value: Any) -> bytes:
    """JSON for the wire: messages as LangChain's dicts, anything else as best it can."""
    return orjson.dumps(value, default=json_default, option=orjson.OPT_NON_STR_KEYS)


def to_wire(value: Any) -> Any:
    """`value` as plain JSON data, ready to be stored or sent."""
    return orjson.loads(dumps(value))


def from_graph(
    event: Mapping[str, Any], graph_names: dict[str, str] | None = None
) -> dict[str, Any]:
    """Normalise one event of `astream_events(version="v3")` for the wire (no seq yet).

    LangGraph reports a subgraph's lifecycle at the parent's namespace with the
    subgraph's own in `data.namespace`; clients (the SDK among them) read the
    subgraph's namespace from `params.namespace`, and take a root-namespace
    `completed` as the end of the run, so it is copied there, as LangGraph's server
    does. Its end names the subgraph too, from `graph_names` (namespace → graph name,
    filled as subgraphs start; one mapping per run).
    """
    method = event["method"]
    params = dict(event["params"])
    data = params.get("data")
    if method == "lifecycle" and isinstance(data, dict) and "namespace" in data:
        data = dict(data)
        params["namespace"] = list(data["namespace"])
        if graph_names is not None:
            where = "|".join(data["namespace"])
            if "graph_name" in data:
                graph_names[where] = data["graph_name"]
            elif where in graph_names:
                data["graph_name"] = graph_names[where]
    elif method == "messages" and isinstance(data, list | tuple) and len(data) == 2:
        # LangGraph pairs each message event with the whole run metadata; the wire
        # carries the event and the node that produced it.
        data, metadata = data
        if isinstance(metadata, Mapping) and metadata.get("langgraph_node"):
            params["node"] = metadata["langgraph_node"]
    elif method == "updates" and isinstance(data, Mapping) and len(data) == 1:
        [(node, values)] = data.items()
        data = {
            "node": node,
            "values": values if isinstance(values, Mapping) else {"value": values},
        }
    elif method == "custom":
        name = data.get("type") if isinstance(data, Mapping) else None
        data = {"name": name, "payload": data} if isinstance(name, str) else {"payload": data}
    params["data"] = data
    params["namespace"] = list(params.get("namespace") or ())
    # Left as LangGraph's objects: the event is encoded once, when it is numbered.
    return {"type": "event", "method": method, "params": params}


def lifecycle(
    status: Literal["running", "completed", "failed", "interrupted"],
    *,
    run_id: str,
    error: str | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    """A root lifecycle event: the run is running, or ended and how.

    The root says `running` where a subgraph says `started`, as LangGraph's server does:
    the JavaScript SDK marks a thread loading, and opens a run's message boundary, on a
    root `running`.
    """
    data: dict[str, Any] = {"event": status, "graph_name": "manager", "run_id": run_id}
    if error is not None:
        data["error"] = error
    if code is not None:
        data["code"] = code
    return {
        "type": "event",
        "method": "lifecycle",
        "params": {"namespace": [], "timestamp": int(time.time() * 1000), "data": data},
    }


class Logged(dict[str, Any]):
    """An event with its place in the thread's log, and its JSON encoded once (`raw`).

    The same bytes are written to the log and sent to every subscriber, over WebSocket
    and SSE alike; an event read back from the log keeps the bytes it was stored as.
    Read it as the dict it is; never change it once numbered: `raw` would not follow.
    """

    __slots__ = ("data_raw", "raw")

    def __init__(
        self, event: Mapping[str, Any], raw: bytes | None = None, data_raw: bytes | None = None
    ) -> None:
        super().__init__(event)
        self.data_raw = data_raw
        """`params.data` as it was encoded, when it was encoded before the event (API events)."""
        if raw is None:
            raw = dumps(event if data_raw is None else _embedding(event, data_raw))
        self.raw: bytes = raw

    @classmethod
    def decode(cls, raw: bytes) -> Logged:
        """An event as the log stored it."""
        return cls(orjson.loads(raw), raw)


class PreEncoded(dict[str, Any]):
    """An event whose `params.data` was encoded as it was made (`data_raw`).

    Its encoding embeds those bytes rather than encoding the data again, and LangGraph
    API frames send them as they are.
    """

    __slots__ = ("data_raw",)

    def __init__(self, event: Mapping[str, Any], data_raw: bytes) -> None:
        super().__init__(event)
        self.data_raw = data_raw


def _embedding(event: Mapping[str, Any], data_raw: bytes) -> dict[str, Any]:
    # orjson copies a Fragment's bytes into the output as they are: no second encoding.
    return {**event, "params": {**event["params"], "data": orjson.Fragment(data_raw)}}


def numbered(event: Mapping[str, Any], seq: int) -> Logged:
    """The event with its place in the thread's log, encoded: the one encoding it gets.

    `seq` orders it in the thread; `event_id`, the same, is what a client resumes from.
    """
    data_raw = event.data_raw if isinstance(event, PreEncoded) else None
    return Logged({**event, "seq": seq, "event_id": str(seq)}, data_raw=data_raw)


def data_json(event: Mapping[str, Any]) -> bytes:
    """An event's `params.data` as JSON: the bytes it was encoded as, when it kept them."""
    data_raw = event.data_raw if isinstance(event, Logged | PreEncoded) else None
    return data_raw if data_raw is not None else dumps(event["params"]["data"])


Ending = Literal["completed", "failed", "interrupted"]
_ENDINGS: frozenset[str] = frozenset(("completed", "failed", "interrupted"))


@dataclass(frozen=True)
class RunEnd:
    """How a run ended, as its terminal event says."""

    run_id: str
    ending: Ending
    code: str | None = None
    """One of `ErrorCode`, for a run that failed (`cancelled` for a stopped one)."""
    error: str | None = None
    """Why it failed, in words a user can act on."""

    @property
    def errored(self) -> bool:
        """Failed other than by being cancelled: an error to report."""
        return self.ending == "failed" and self.code != ErrorCode.CANCELLED


def _root_lifecycle(event: Mapping[str, Any]) -> Mapping[str, Any] | None:
    if event.get("method") != "lifecycle" or event["params"].get("namespace"):
        return None
    data: Mapping[str, Any] = event["params"]["data"]
    return data


def run_end(event: Mapping[str, Any]) -> RunEnd | None:
    """The run's end, if `event` is one: a root lifecycle completed / failed / interrupted."""
    data = _root_lifecycle(event)
    if data is None or data.get("event") not in _ENDINGS:
        return None
    return RunEnd(
        run_id=str(data.get("run_id", "")),
        ending=data["event"],
        code=data.get("code"),
        error=data.get("error"),
    )


def run_started(event: Mapping[str, Any]) -> str | None:
    """The id of the run `event` starts, if it is a root `running`."""
    data = _root_lifecycle(event)
    return str(data.get("run_id", "")) if data and data.get("event") == "running" else None


def is_terminal(event: Mapping[str, Any]) -> bool:
    """Whether an event ends a run: a root lifecycle completed / failed / interrupted."""
    return run_end(event) is not None


def ends_run(event: Mapping[str, Any], run_id: str) -> bool:
    """Whether `event` ends the run `run_id`."""
    end = run_end(event)
    return end is not None and end.run_id == run_id
