"""How the Redis savers lay a thread out in Redis: keys, field names, the one-trip load.

Layout, for a thread `T` (all of a thread's keys share the `{T}` hash tag, so they live in
one Cluster slot and a thread's batch can run as one MULTI/EXEC):

- `<prefix>:{T}:order`       sorted set, every member scored 0 so it sorts by bytes:
                             `ns␟checkpoint_id` (checkpoint ids are time-ordered uuid6s)
- `<prefix>:{T}:checkpoints` hash: `ns␟id` → the checkpoint record; `ns␟id␟refs` → the
                             blob fields its channel values live in
- `<prefix>:{T}:blobs`       hash: `ns␟channel␟version` → a channel value
- `<prefix>:{T}:writes`      hash: `ns␟id␟task␟idx` → a pending write
- `<prefix>:{T}:write_index` sorted set of the `writes` fields, for range reads by checkpoint
- `<prefix>:run:{R}`         set of `T␟ns␟id` written by run `R`, for `delete_for_runs`

Only plain data types and Lua are used: no modules, so Redis ≥ 6, Valkey and managed
Redis all work. No operation scans the keyspace.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from langchain_core.runnables import RunnableConfig

SEP = "\x1f"
"""Separates the parts of a field name; never found in namespaces, ids or channel names."""
REFS_SEP = "\x1e"
"""Separates blob field names in a checkpoint's `refs` field."""
HIGH = "\xff"
"""Sorts after any UTF-8 text: the open end of a lexicographic range."""

# One round trip for a whole checkpoint tuple: find the checkpoint (the latest in its
# namespace when no id is given), its record, its channel values and its pending writes.
LOAD_CHECKPOINT = """
local ns, wanted, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local sep = "\\31"
local id = wanted
if id == "" then
  local latest = redis.call("ZREVRANGEBYLEX", KEYS[1], "[" .. ns .. sep .. "\\255",
                            "[" .. ns .. sep, "LIMIT", 0, 1)
  if #latest == 0 then return false end
  id = string.sub(latest[1], #ns + 2)
end
local member = ns .. sep .. id
local found = redis.call("HMGET", KEYS[2], member, member .. sep .. "refs")
if not found[1] then return false end
local fields = {}
if found[2] then
  for f in string.gmatch(found[2], "[^\\30]+") do fields[#fields + 1] = f end
end
local blobs = {}
if #fields > 0 then blobs = redis.call("HMGET", KEYS[3], unpack(fields)) end
local write_fields = redis.call("ZRANGEBYLEX", KEYS[5], "[" .. member .. sep,
                                "[" .. member .. sep .. "\\255")
local writes = {}
if #write_fields > 0 then writes = redis.call("HMGET", KEYS[4], unpack(write_fields)) end
if ttl and ttl > 0 then
  for i = 1, 5 do redis.call("EXPIRE", KEYS[i], ttl) end
end
return {id, found[1], fields, blobs, writes}
"""


@dataclass(slots=True)
class Loaded:
    """A checkpoint as `LOAD_CHECKPOINT` returns it, before decoding."""

    thread_id: str
    ns: str
    checkpoint_id: str
    record: bytes
    blob_fields: list[str]
    blobs: list[bytes | None]
    writes: list[bytes | None]


@dataclass(slots=True)
class Removal:
    """Fields to remove from one thread's keys."""

    checkpoints: list[str] = field(default_factory=list)
    order: list[str] = field(default_factory=list)
    writes: list[str] = field(default_factory=list)


def member_of(ns: str, checkpoint_id: str) -> str:
    """The `ns␟id` member naming a checkpoint in a thread's keys."""
    return f"{ns}{SEP}{checkpoint_id}"


def split_member(member: bytes | str) -> tuple[str, str]:
    """`(ns, checkpoint_id)` of an `ns␟id` member."""
    text = member.decode() if isinstance(member, bytes) else member
    ns, _, checkpoint_id = text.rpartition(SEP)
    return ns, checkpoint_id


def as_text(value: bytes | str) -> str:
    """A Redis reply as text."""
    return value.decode() if isinstance(value, bytes) else value


def before_id(before: RunnableConfig | Mapping[str, Any] | None) -> str | None:
    """The checkpoint id a `before` bound names.

    LangGraph passes a config; `langgraph dev` hands a client's checkpoint on as it came,
    `{"checkpoint_id": ..., "thread_id": ..., "checkpoint_ns": ...}`. Both are read.
    """
    if not before:
        return None
    configurable = before.get("configurable")
    bound = configurable if isinstance(configurable, Mapping) else before
    found = bound.get("checkpoint_id")
    return str(found) if found else None
