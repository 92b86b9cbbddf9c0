"""LangGraph's long-term memory store (`BaseStore`) on plain Redis, Valkey or Redis Cluster.

Semantics follow LangGraph's `InMemoryStore` (its reference store) for everything but
semantic search, with TTLs besides. Keys (`memory/keys.py`), for a namespace `N` whose
hash tag is `{t}` (its labels joined by `.`, or a digest when they hold braces):

- `<p>:store:{t}:i:<key>` (hash): one item: `value` (JSON), `created`, `updated` (µs
  since the epoch) and `ttl` (ms, 0 for none); it expires natively with the item's TTL
- `<p>:store:{t}:keys` (sorted set): the namespace's keys, scored by when each was first
  put, so search lists them in that order; `<p>:store:{t}:meta` (hash): that counter
  (`seq`) and how many times the namespace has come into being (`gen`)
- `<p>:{store}:namespaces` (sorted set, all scored 0 so it sorts by bytes) and
  `<p>:{store}:namespace-info` (hash: namespace → `seq gen`): every namespace that holds
  items, for searches and lists across namespaces, in the order they came into being

A namespace's keys share a slot, so its writes are one script; the index lives in one
slot of its own. The index may, for a moment, name a namespace with no live items (one
emptied concurrently, or whose items expired): every read checks the namespace itself,
drops the key names of expired items, and takes an emptied namespace out of the index.
`gen` orders those index updates across processes: an update carrying an older
generation of a namespace never undoes a newer one.

A batch costs at most four round trips, however many operations it holds: reads (gets
and index lookups), the namespaces searches and lists need, writes (one script per
namespace), and the index updates those writes made.

Not supported: semantic (vector) search needs an embedding index, which plain Redis does
not have (RediSearch is a module). A search's `query` is ignored, as `InMemoryStore`
does without an `index`, and a put's `index` is accepted and ignored.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from langgraph.store.base import (
    BaseStore,
    GetOp,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    TTLConfig,
    validate_op_namespace,
)
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from memory.connection import send_batch
from memory.keys import RedisKeys
from memory.layout import Script
from memory.steps import Batch

Namespace = tuple[str, ...]

WRITE = Script(
    """
-- KEYS: the namespace's keys, meta, then one item key per write.
-- ARGV: now (µs), then per write: key, JSON value ("" deletes), ttl (ms, 0: none).
-- Returns {1, gen} when the namespace came into being, {-1, gen} when it was emptied.
local keys, meta, now = KEYS[1], KEYS[2], ARGV[1]
local before = redis.call("EXISTS", keys)
for i = 3, #KEYS do
  local item, a = KEYS[i], 2 + (i - 3) * 3
  local name, value, ttl = ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2])
  if value == "" then
    redis.call("DEL", item)
    redis.call("ZREM", keys, name)
  else
    local existed = redis.call("EXISTS", item)
    redis.call("HSET", item, "value", value, "updated", now, "ttl", ttl)
    if existed == 0 then
      redis.call("HSET", item, "created", now)
      redis.call("ZADD", keys, redis.call("HINCRBY", meta, "seq", 1), name)
    end
    if ttl > 0 then redis.call("PEXPIRE", item, ttl) else redis.call("PERSIST", item) end
  end
end
local after = redis.call("EXISTS", keys)
if before == 0 and after == 1 then return {1, redis.call("HINCRBY", meta, "gen", 1)} end
if before == 1 and after == 0 then return {-1, tonumber(redis.call("HGET", meta, "gen") or 0)} end
return {0, 0}
"""
)
"""Apply a namespace's puts and deletes, keeping each item's `created` and place."""

READ = Script(
    """
-- KEYS: the namespace's keys, meta. ARGV: the prefix of its item keys, "1" to stop at
-- the first live item (a liveness check) or "0" for all.
-- Returns {gen or 0 if the namespace is (now) empty, then per live item: key, value,
-- created, updated, ttl}. Key names of expired items are dropped on the way.
local names = redis.call("ZRANGE", KEYS[1], 0, -1)
local out, dead = {0}, {}
for _, name in ipairs(names) do
  local f = redis.call("HMGET", ARGV[1] .. name, "value", "created", "updated", "ttl")
  if f[1] then
    table.insert(out, name)
    for j = 1, 4 do table.insert(out, f[j]) end
    if ARGV[2] == "1" then break end
  else
    table.insert(dead, name)
  end
end
for i = 1, #dead, 1000 do
  redis.call("ZREM", KEYS[1], unpack(dead, i, math.min(i + 999, #dead)))
end
if #out == 1 then out[1] = tonumber(redis.call("HGET", KEYS[2], "gen") or 0) end
return out
"""
)
"""A namespace's live items in the order their keys were first put (or just whether any)."""

LOOKUP = Script(
    """
-- KEYS: the index, its info. ARGV: a ZRANGEBYLEX range.
-- Returns namespace, "seq gen" pairs.
local names = redis.call("ZRANGEBYLEX", KEYS[1], ARGV[1], ARGV[2])
local out = {}
for _, name in ipairs(names) do
  table.insert(out, name)
  table.insert(out, redis.call("HGET", KEYS[2], name) or "0 0")
end
return out
"""
)
"""The indexed namespaces in a range, each with its place (`seq`)."""

UPDATE_INDEX = Script(
    """
-- KEYS: the index, its info, the namespace counter. ARGV: triples namespace, "+" (came
-- into being) or "-" (emptied), generation.
for i = 1, #ARGV, 3 do
  local name, change, gen = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local info = redis.call("HGET", KEYS[2], name)
  local stored = info and tonumber(string.match(info, " (%d+)$"))
  if change == "+" then
    if not stored or stored < gen then
      redis.call("ZADD", KEYS[1], 0, name)
      redis.call("HSET", KEYS[2], name, redis.call("INCR", KEYS[3]) .. " " .. gen)
    end
  elseif stored and stored <= gen then
    redis.call("ZREM", KEYS[1], name)
    redis.call("HDEL", KEYS[2], name)
  end
end
return 1
"""
)
"""Add namespaces that came into being to the index, remove emptied ones; by generation."""


def joined(namespace: Namespace) -> str:
    """A namespace as the index names it: labels joined by `.` (never found in a label)."""
    return ".".join(namespace)


def _now_us() -> int:
    return time.time_ns() // 1000


def _when(microseconds: bytes) -> datetime:
    return datetime.fromtimestamp(int(microseconds) / 1_000_000, tz=UTC)


def _ttl_ms(minutes: float | None) -> int:
    return max(1, round(minutes * 60_000)) if minutes else 0


@dataclass(slots=True)
class _Found:
    """An item as Redis holds it, before it becomes an `Item`."""

    namespace: Namespace
    key: str
    value: dict[str, Any]
    created: bytes
    updated: bytes
    ttl: int


@dataclass(slots=True)
class _Reads:
    """What a batch's reads learnt: namespaces' items, and index entries to drop."""

    items: dict[Namespace, list[_Found]] = field(default_factory=dict)
    emptied: dict[Namespace, int] = field(default_factory=dict)


class RedisStore(BaseStore):
    """LangGraph's key-value store for long-term memory, on plain Redis (≥ 6).

    Args:
        client: An async Redis (or Cluster) client (`memory.connection.async_client`).
        keys: The key schema, for its prefix.
        ttl: Default TTL of items (minutes) and whether reads refresh it.

    The sync `batch` hands its work to the event loop the store was created on, as the
    checkpointer does (`memory/aio.py`); call it from other threads only.
    """

    supports_ttl = True

    def __init__(
        self,
        client: Redis | RedisCluster,
        *,
        keys: RedisKeys | None = None,
        ttl: TTLConfig | None = None,
    ) -> None:
        self.client = client
        self.keys = keys or RedisKeys()
        self.ttl_config = ttl
        self.loop = asyncio.get_running_loop()

    # -- keys ----------------------------------------------------------------------------

    def _tag(self, namespace: Namespace) -> str:
        text = joined(namespace)
        if "{" in text or "}" in text:
            # A brace would end the hash tag early, or leave it empty (no tag at all).
            # No joined namespace starts with `.`, so a digest cannot meet a real one.
            return "." + hashlib.sha256(text.encode()).hexdigest()
        return text

    def _namespace_keys(self, namespace: Namespace) -> tuple[str, str, str]:
        keys = self.keys.store_namespace(self._tag(namespace))
        return keys.keys, keys.meta, keys.items

    def _index(self) -> tuple[str, str, str]:
        return self.keys.store_index, self.keys.store_index_info, self.keys.store_index_seq

    # -- batches -------------------------------------------------------------------------

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """Run operations; every read sees the state before the batch's writes.

        As in `InMemoryStore`, several puts to one item in a batch leave the last.
        """
        ops = list(ops)
        for op in ops:
            validate_op_namespace(op)
        results: list[Result] = [None] * len(ops)
        reads = await self._read(ops, results)
        refresh = self._refreshes(ops, results)
        writes: dict[tuple[Namespace, str], PutOp] = {}
        for op in ops:
            if isinstance(op, PutOp):
                writes[(op.namespace, op.key)] = op
        await self._write(writes, refresh, reads.emptied)
        return results

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Sync `abatch`, for callers on other threads."""
        coroutine = self.abatch(list(ops))
        try:
            if asyncio.get_running_loop() is self.loop:
                coroutine.close()
                raise asyncio.InvalidStateError(
                    "RedisStore's sync methods cannot run on its own event loop; "
                    "use the async methods (aget, aput, asearch, …) there"
                )
        except RuntimeError:
            pass
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    async def _send(self, commands: list[Sequence[Any]]) -> list[Any]:
        return await send_batch(self.client, Batch(commands)) if commands else []

    # -- reads ---------------------------------------------------------------------------

    async def _read(self, ops: list[Op], results: list[Result]) -> _Reads:
        """Gets and index lookups in one round trip, then the namespaces found."""
        commands: list[Sequence[Any]] = []
        for op in ops:
            if isinstance(op, GetOp):
                _, _, items = self._namespace_keys(op.namespace)
                commands.append(("HMGET", items + op.key, "value", "created", "updated", "ttl"))
            elif isinstance(op, SearchOp):
                commands.append((LOOKUP, 2, *self._index()[:2], *_lex_range(op.namespace_prefix)))
            elif isinstance(op, ListNamespacesOp):
                literal = _literal_prefix(op.match_conditions or ())
                commands.append((LOOKUP, 2, *self._index()[:2], *_lex_range(literal)))
        replies = iter(await self._send(commands))
        found: dict[int, list[Namespace]] = {}
        for i, op in enumerate(ops):
            if isinstance(op, GetOp):
                fields = next(replies)
                if fields[0] is not None:
                    results[i] = _TTLItem(_found(op.namespace, op.key, fields))
            elif isinstance(op, SearchOp):
                candidates = _indexed(next(replies))
                n = len(op.namespace_prefix)
                found[i] = [ns for ns in candidates if ns[:n] == op.namespace_prefix]
            elif isinstance(op, ListNamespacesOp):
                candidates = _indexed(next(replies))
                found[i] = [
                    ns
                    for ns in candidates
                    if all(_matches(c, ns) for c in op.match_conditions or ())
                ]
        reads = await self._namespaces(ops, found)
        for i, namespaces in found.items():
            op = ops[i]
            if isinstance(op, SearchOp):
                results[i] = _search(op, [f for ns in namespaces for f in reads.items.get(ns, [])])
            elif isinstance(op, ListNamespacesOp):
                results[i] = _list(op, [ns for ns in namespaces if ns in reads.items])
        return reads

    async def _namespaces(self, ops: list[Op], found: dict[int, list[Namespace]]) -> _Reads:
        """Read the namespaces searches need in full, and check those lists name."""
        full: dict[Namespace, bool] = {}
        for i, namespaces in found.items():
            for ns in namespaces:
                full[ns] = full.get(ns, False) or isinstance(ops[i], SearchOp)
        commands: list[Sequence[Any]] = []
        for ns, whole in full.items():
            keys, meta, items = self._namespace_keys(ns)
            commands.append((READ, 2, keys, meta, items, "0" if whole else "1"))
        reads = _Reads()
        for ns, reply in zip(full, await self._send(commands), strict=True):
            if len(reply) == 1:  # no live item: the namespace is gone
                reads.emptied[ns] = int(reply[0])
                continue
            rows = reply[1:]
            reads.items[ns] = [
                _found(ns, rows[j].decode(), rows[j + 1 : j + 5]) for j in range(0, len(rows), 5)
            ]
        return reads

    def _refreshes(self, ops: list[Op], results: list[Result]) -> list[tuple[str, int]]:
        """The items read with `refresh_ttl` whose TTL restarts: (key, ms)."""
        refresh: list[tuple[str, int]] = []
        for op, result in zip(ops, results, strict=True):
            if isinstance(op, GetOp) and op.refresh_ttl and isinstance(result, _TTLItem):
                refresh.append((self._namespace_keys(op.namespace)[2] + op.key, result.ttl))
            elif isinstance(op, SearchOp) and op.refresh_ttl and isinstance(result, list):
                refresh += [
                    (self._namespace_keys(item.namespace)[2] + item.key, item.ttl)
                    for item in result
                    if isinstance(item, _TTLSearchItem)
                ]
        return [(key, ms) for key, ms in refresh if ms]

    # -- writes --------------------------------------------------------------------------

    async def _write(
        self,
        writes: dict[tuple[Namespace, str], PutOp],
        refresh: list[tuple[str, int]],
        emptied: dict[Namespace, int],
    ) -> None:
        """One script per namespace written (and TTL refreshes), then the index."""
        by_namespace: dict[Namespace, list[PutOp]] = {}
        for (ns, _), op in writes.items():
            by_namespace.setdefault(ns, []).append(op)
        now = _now_us()
        commands: list[Sequence[Any]] = []
        for ns, puts in by_namespace.items():
            keys, meta, items = self._namespace_keys(ns)
            arguments: list[Any] = [now]
            for op in puts:
                value = b"" if op.value is None else orjson.dumps(op.value)
                arguments += [op.key, value, _ttl_ms(op.ttl) if op.value is not None else 0]
            item_keys = [items + op.key for op in puts]
            commands.append((WRITE, 2 + len(puts), keys, meta, *item_keys, *arguments))
        commands += [("PEXPIRE", key, ms) for key, ms in refresh]
        replies = await self._send(commands)
        changes: list[Any] = []
        for ns, gen in emptied.items():
            changes += [joined(ns), "-", gen]
        for ns, (change, gen) in zip(by_namespace, replies, strict=False):
            if change:
                changes += [joined(ns), "+" if change > 0 else "-", gen]
        if changes:
            await self._send([(UPDATE_INDEX, 3, *self._index(), *changes)])


class _TTLItem(Item):
    """An `Item` that remembers its TTL, so a read can restart it."""

    __slots__ = ("ttl",)

    def __init__(self, found: _Found) -> None:
        super().__init__(
            value=found.value,
            key=found.key,
            namespace=found.namespace,
            created_at=_when(found.created),
            updated_at=_when(found.updated),
        )
        self.ttl = found.ttl


class _TTLSearchItem(SearchItem):
    """A `SearchItem` that remembers its TTL, so a read can restart it."""

    __slots__ = ("ttl",)

    def __init__(self, found: _Found) -> None:
        super().__init__(
            namespace=found.namespace,
            key=found.key,
            value=found.value,
            created_at=_when(found.created),
            updated_at=_when(found.updated),
        )
        self.ttl = found.ttl


def _found(namespace: Namespace, key: str, fields: Sequence[Any]) -> _Found:
    value, created, updated, ttl = fields
    return _Found(namespace, key, orjson.loads(value), created, updated, int(ttl or 0))


def _indexed(reply: list[bytes]) -> list[Namespace]:
    """The namespaces of a lookup, in the order they came into being."""
    pairs = [(reply[i].decode(), int(reply[i + 1].split()[0])) for i in range(0, len(reply), 2)]
    return [tuple(name.split(".")) for name, _ in sorted(pairs, key=lambda pair: pair[1])]


def _lex_range(prefix: Namespace) -> tuple[bytes, bytes]:
    """The index range holding every namespace that starts with `prefix`.

    And a few more, such as `a.bc` for `a.b`, which the caller drops.
    """
    if not prefix:
        return b"-", b"+"
    start = joined(prefix).encode()
    return b"[" + start, b"[" + start + b"\xff"


def _literal_prefix(conditions: Sequence[MatchCondition]) -> Namespace:
    """The leading labels every listed namespace must have.

    Those of a prefix condition, up to its first wildcard.
    """
    for condition in conditions:
        if condition.match_type == "prefix":
            labels = tuple(condition.path)
            return labels[: labels.index("*")] if "*" in labels else labels
    return ()


def _matches(condition: MatchCondition, namespace: Namespace) -> bool:
    """Whether `namespace` starts (`prefix`) or ends (`suffix`) with a condition's path.

    A `*` in the path matches any one label.
    """
    path = tuple(condition.path)
    if len(namespace) < len(path):
        return False
    if condition.match_type == "prefix":
        part = namespace[: len(path)]
    elif condition.match_type == "suffix":
        part = namespace[len(namespace) - len(path) :]
    else:
        raise ValueError(f"Unsupported match type: {condition.match_type}")
    return all(want in ("*", label) for want, label in zip(path, part, strict=True))


def _search(op: SearchOp, candidates: list[_Found]) -> list[SearchItem]:
    """The page of matching items, in the order they were found."""
    matching = [f for f in candidates if _passes(f.value, op.filter)]
    return [_TTLSearchItem(f) for f in matching[op.offset : op.offset + op.limit]]


def _list(op: ListNamespacesOp, namespaces: list[Namespace]) -> list[Namespace]:
    """The page of namespaces (cut to `max_depth`), sorted."""
    if op.max_depth is not None:
        listed = sorted({ns[: op.max_depth] for ns in namespaces})
    else:
        listed = sorted(namespaces)
    return listed[op.offset : op.offset + op.limit]


def _passes(value: dict[str, Any], conditions: dict[str, Any] | None) -> bool:
    """Whether an item's value meets a search filter (every field must)."""
    return all(_equal(value.get(name), want) for name, want in (conditions or {}).items())


def _equal(found: Any, want: Any) -> bool:
    """Whether a value meets one field's filter, as `InMemoryStore` checks it.

    Operators (`$eq`, `$gt`, …) where a dict names them, dicts field by field, lists
    element by element, anything else by equality.
    """
    if isinstance(want, dict):
        if any(name.startswith("$") for name in want):
            return all(_operator(found, name, operand) for name, operand in want.items())
        return isinstance(found, dict) and all(
            _equal(found.get(name), inner) for name, inner in want.items()
        )
    if isinstance(want, (list, tuple)):
        return (
            isinstance(found, (list, tuple))
            and len(found) == len(want)
            and all(_equal(f, w) for f, w in zip(found, want, strict=True))
        )
    return bool(found == want)


def _operator(found: Any, name: str, operand: Any) -> bool:
    if name == "$eq":
        return bool(found == operand)
    if name == "$ne":
        return bool(found != operand)
    if name == "$gt":
        return float(found) > float(operand)
    if name == "$gte":
        return float(found) >= float(operand)
    if name == "$lt":
        return float(found) < float(operand)
    if name == "$lte":
        return float(found) <= float(operand)
    raise ValueError(f"Unsupported operator: {name}")
