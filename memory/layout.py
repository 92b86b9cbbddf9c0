"""How the Redis savers lay a thread out in Redis: keys, field names, scripts.

Layout 2 (2026-12). For a thread `T`, two keys, both with the `{T}` hash tag so they
live in one Cluster slot and one script can touch both:

- `<prefix>:{T}:checkpoints:v2`, a hash (the thread's data):
    `c␟ns␟id`               → `refs ␀ record`: the blob fields of the checkpoint's channel
                              values, `␞`-separated, then the msgpack record
                              `[kind, checkpoint, md_kind, metadata, parent_id]`
    `b␟ns␟channel␟version`  → `kind ␀ data`: a channel value, stored once per version
    `w␟ns␟id␟task␟idx`      → msgpack `[task, channel, kind, data, path, idx]`: a write
- `<prefix>:{T}:order:v2`, a sorted set, every member scored 0 so it sorts by bytes:
    `c␟ns␟id`               a checkpoint (ids are time-ordered uuid6s, so the last of a
                              namespace's range is its latest)
    `w␟ns␟id␟task␟idx`      a pending write of checkpoint `id`, the same name as its field
    `r␟run␟ns␟id`           checkpoint `id` was written by run `run`

and, per run `R`, `<prefix>:run:v2:{R}`: a string, the `␟`-separated ids of the threads
the run wrote checkpoints to, for `delete_for_runs` (in the run's slot, not a thread's).

Costs, counted as Redis counts them (a script is 1 + the commands it runs): a checkpoint
write is one script of 5 commands (HSET, ZADD, 2 EXPIRE, and SET NX on the run's key), so 6;
reading the latest checkpoint of a namespace with none is one ZREVRANGEBYLEX; reading a
checkpoint is one script of 3 (HGET, ZRANGEBYLEX, HMGET); a task's writes are one script
of 4 or 5 (EXISTS, HSETNX or HMGET + HSET, ZADD).

The first layout (five keys a thread: `order`, `checkpoints`, `blobs`, `writes`,
`write_index`, and a set a run) is not read: the savers' `setup` moves its threads into
this one once per prefix (the only scan of the keyspace), and `delete_thread` deletes
its keys too. Only plain data types and Lua are used: no modules, so Redis ≥ 6, Valkey
and managed Redis all work. No other operation scans the keyspace.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from langchain_core.runnables import RunnableConfig

LAYOUT = b"2"
"""The layout's number, kept under `RedisKeys.layout` once a prefix's threads are in it."""
SEP = "\x1f"
"""Separates the parts of a field name; never found in namespaces, ids or channel names."""
REFS_SEP = "\x1e"
"""Separates blob field names in a checkpoint's value."""
HIGH = "\xff"
"""Sorts after any UTF-8 text: the open end of a lexicographic range."""
CHECKPOINT = "c" + SEP
BLOB = "b" + SEP
WRITE = "w" + SEP
RUN = "r" + SEP
"""What a field or member names, by its first two characters."""


@dataclass(frozen=True, slots=True)
class Script:
    """A Lua script, sent by its SHA1 (EVALSHA) once Redis has it."""

    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())


_INDEX_RUN = """
local function index_run(key, thread, ttl)
  local set
  if ttl > 0 then
    set = redis.call("SET", key, thread, "NX", "EX", ttl)
  else
    set = redis.call("SET", key, thread, "NX")
  end
  if set then return end
  local threads = redis.call("GET", key)
  if threads and not string.find("\\31" .. threads .. "\\31", "\\31" .. thread .. "\\31", 1, true)
  then
    redis.call("APPEND", key, "\\31" .. thread)
  end
end
"""

PUT_CHECKPOINT = Script(
    _INDEX_RUN
    + """
-- KEYS: data, index[, the run's key]. ARGV: ttl (0: none), checkpoint member, run member
-- ("" for none), thread id, then field, value pairs for the data hash.
local ttl = tonumber(ARGV[1])
redis.call("HSET", KEYS[1], unpack(ARGV, 5))
if ARGV[3] ~= "" then
  redis.call("ZADD", KEYS[2], 0, ARGV[2], 0, ARGV[3])
else
  redis.call("ZADD", KEYS[2], 0, ARGV[2])
end
if ttl > 0 then
  redis.call("EXPIRE", KEYS[1], ttl)
  redis.call("EXPIRE", KEYS[2], ttl)
end
if KEYS[3] then index_run(KEYS[3], ARGV[4], ttl) end
return 1
"""
)
"""Store a checkpoint, its new channel values, its place in the order and its run."""

INDEX_RUN = Script(
    _INDEX_RUN
    + """
-- KEYS: the run's key. ARGV: thread id, ttl (0: none).
index_run(KEYS[1], ARGV[1], tonumber(ARGV[2]))
return 1
"""
)
"""Note that a run wrote to a thread (on a Cluster, where the run's key is elsewhere)."""

PUT_WRITES = Script(
    """
-- KEYS: data, index. ARGV: ttl (0: none), how many writes replace, then field, value
-- pairs: those that replace what the task wrote before, then those written once.
local ttl = tonumber(ARGV[1])
local replacing = tonumber(ARGV[2])
local fresh = redis.call("EXISTS", KEYS[1], KEYS[2]) < 2
local members = {}
local replace = {}
for i = 3, 2 + 2 * replacing, 2 do
  replace[#replace + 1] = ARGV[i]
  replace[#replace + 1] = ARGV[i + 1]
  members[#members + 1] = 0
  members[#members + 1] = ARGV[i]
end
local once_start = 3 + 2 * replacing
local once = (#ARGV - once_start + 1) / 2
if once == 1 then
  redis.call("HSETNX", KEYS[1], ARGV[once_start], ARGV[once_start + 1])
elseif once > 1 then
  local names = {}
  for i = once_start, #ARGV, 2 do names[#names + 1] = ARGV[i] end
  local found = redis.call("HMGET", KEYS[1], unpack(names))
  for j = 1, once do
    if not found[j] then
      replace[#replace + 1] = ARGV[once_start + 2 * (j - 1)]
      replace[#replace + 1] = ARGV[once_start + 2 * (j - 1) + 1]
    end
  end
end
if #replace > 0 then redis.call("HSET", KEYS[1], unpack(replace)) end
for i = once_start, #ARGV, 2 do
  members[#members + 1] = 0
  members[#members + 1] = ARGV[i]
end
redis.call("ZADD", KEYS[2], unpack(members))
if fresh and ttl > 0 then
  redis.call("EXPIRE", KEYS[1], ttl)
  redis.call("EXPIRE", KEYS[2], ttl)
end
return 1
"""
)
"""Store a task's writes. Regular writes are written once (a retried task cannot
duplicate them); special ones (errors, interrupts, …) replace. The keys' TTL is set only
where one of them is new: writes follow the checkpoint they belong to, whose write
restarted the clock moments before."""

LOAD_CHECKPOINT = Script(
    """
-- KEYS: data, index. ARGV: checkpoint member, ttl to restart (0: none).
local member = ARGV[1]
local stored = redis.call("HGET", KEYS[1], member)
if not stored then return false end
local fields = {}
local cut = string.find(stored, "\\0", 1, true)
for f in string.gmatch(string.sub(stored, 1, cut - 1), "[^\\30]+") do
  fields[#fields + 1] = f
end
local blobs = #fields
local prefix = "w" .. string.sub(member, 2) .. "\\31"
local writes = redis.call("ZRANGEBYLEX", KEYS[2], "[" .. prefix, "[" .. prefix .. "\\255")
for i = 1, #writes do fields[#fields + 1] = writes[i] end
local values = {}
if #fields > 0 then values = redis.call("HMGET", KEYS[1], unpack(fields)) end
local ttl = tonumber(ARGV[2])
if ttl > 0 then
  redis.call("EXPIRE", KEYS[1], ttl)
  redis.call("EXPIRE", KEYS[2], ttl)
end
return {stored, blobs, values}
"""
)
"""One round trip for a whole checkpoint: its record, its channel values (in the order
of its refs) and its pending writes."""


@dataclass(slots=True)
class Loaded:
    """A checkpoint as `LOAD_CHECKPOINT` returns it, before decoding."""

    thread_id: str
    ns: str
    checkpoint_id: str
    stored: bytes
    """`refs ␀ record`."""
    blobs: list[bytes | None]
    """The channel values, in the order of the refs."""
    writes: list[bytes | None]


@dataclass(slots=True)
class Removal:
    """Fields and members to remove from one thread's keys."""

    fields: list[str] = field(default_factory=list)
    members: list[str] = field(default_factory=list)


def checkpoint_member(ns: str, checkpoint_id: str) -> str:
    """The `c␟ns␟id` field and member naming a checkpoint."""
    return f"{CHECKPOINT}{ns}{SEP}{checkpoint_id}"


def split_member(member: bytes | str) -> tuple[str, str]:
    """`(ns, checkpoint_id)` of a `c␟ns␟id` member."""
    text = member.decode() if isinstance(member, bytes) else member
    ns, _, checkpoint_id = text[2:].rpartition(SEP)
    return ns, checkpoint_id


def namespace_range(ns: str | None) -> tuple[str, str]:
    """The lexicographic range of the checkpoints of `ns` (of every namespace if `None`)."""
    start = CHECKPOINT if ns is None else f"{CHECKPOINT}{ns}{SEP}"
    return f"[{start}", f"[{start}{HIGH}"


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
