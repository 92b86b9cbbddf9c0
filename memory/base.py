"""What the sync and async Redis savers share: every checkpoint operation, and a thread's upkeep.

`CheckpointOps` reads, lists and writes checkpoints; here are the operations that
delete, copy and prune a thread's (LangGraph's `adelete_thread`, `adelete_for_runs`,
`acopy_thread`, `aprune`), written the same way: generators of batches, no I/O.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import ormsgpack

from memory.checkpoint_ops import CheckpointOps
from memory.layout import (
    BLOB,
    CHECKPOINT,
    HIGH,
    REFS_SEP,
    RUN,
    SEP,
    WRITE,
    Removal,
    as_text,
    checkpoint_member,
    split_member,
)
from memory.steps import Batch, Command, Steps, one


class BaseRedisSaver(CheckpointOps):
    """Checkpoint storage on plain Redis data types, shared by the sync and async savers."""

    def _delete_thread_steps(self, thread_id: str) -> Steps:
        keys = self.thread_keys(thread_id)
        # The first layout's keys too: a deleted thread leaves nothing behind.
        yield one("DEL", *keys.all, *self.keys.legacy_checkpoints(thread_id))

    def _removal_steps(self, thread_id: str, members: Sequence[str]) -> Steps:
        """Remove checkpoints (by `c␟ns␟id` member) of one thread, with their writes."""
        keys = self.thread_keys(thread_id)
        reads: list[Command] = [("ZRANGEBYLEX", keys.index, f"[{RUN}", f"[{RUN}{HIGH}")]
        for member in members:
            writes = f"{WRITE}{member[2:]}{SEP}"
            reads.append(("ZRANGEBYLEX", keys.index, f"[{writes}", f"[{writes}{HIGH}"))
        runs, *found = yield Batch(reads)
        removal = Removal(fields=list(members), members=list(members))
        for write_fields in found:
            names = [as_text(name) for name in write_fields]
            removal.fields += names
            removal.members += names
        doomed = {member[1:] for member in members}  # `␟ns␟id`
        for name in map(as_text, runs):
            # `r␟run␟ns␟id`: the run's part ends at the third separator.
            if name[name.index(SEP, 2) :] in doomed:
                removal.members.append(name)
        yield Batch(
            [("HDEL", keys.data, *removal.fields), ("ZREM", keys.index, *removal.members)],
            transaction=True,
        )

    def _delete_for_runs_steps(self, run_ids: Sequence[str]) -> Steps:
        if not run_ids:
            return
        run_keys = [self.run_key(run_id) for run_id in run_ids]
        found = yield Batch([("GET", key) for key in run_keys])
        threads = sorted(
            {thread for joined in found if joined for thread in as_text(joined).split(SEP)}
        )
        for thread_id in threads:
            index = self.thread_keys(thread_id).index
            ranges = [(f"[{RUN}{run_id}{SEP}", f"[{RUN}{run_id}{SEP}{HIGH}") for run_id in run_ids]
            ran = yield Batch([("ZRANGEBYLEX", index, low, high) for low, high in ranges])
            members = {
                CHECKPOINT + as_text(name).split(SEP, 2)[2] for names in ran for name in names
            }
            if members:
                yield from self._removal_steps(thread_id, sorted(members))
        yield Batch([("DEL", key) for key in run_keys])

    def _copy_thread_steps(self, source: str, target: str) -> Steps:
        src, dst = self.thread_keys(source), self.thread_keys(target)
        data, members = yield Batch([("HGETALL", src.data), ("ZRANGE", src.index, 0, -1)])
        if not members or not data:
            return
        # Field and member names do not name the thread: the copy is the same entries.
        scored: list[Any] = [part for member in members for part in (0, member)]
        fields: list[Any] = [part for item in data.items() for part in item]
        yield Batch(
            [
                ("DEL", *dst.all),
                ("HSET", dst.data, *fields),
                ("ZADD", dst.index, *scored),
                *self._expire(dst.all),
            ],
            transaction=True,
        )
        runs = sorted({as_text(m).split(SEP, 2)[1] for m in members if as_text(m).startswith(RUN)})
        if runs:
            yield Batch([self._index_run(run_id, target) for run_id in runs])

    def _prune_steps(self, thread_ids: Sequence[str], strategy: str, keep: int) -> Steps:
        if strategy not in ("keep_latest", "delete"):
            raise ValueError(f"unknown prune strategy {strategy!r}: use 'keep_latest' or 'delete'")
        if keep < 1:
            raise ValueError("keep must be at least 1")
        for thread_id in thread_ids:
            if strategy == "delete":
                yield from self._delete_thread_steps(thread_id)
                continue
            [members] = yield self._read_members(thread_id)
            by_ns: dict[str, list[str]] = defaultdict(list)
            for member in members:
                ns, checkpoint_id = split_member(member)
                by_ns[ns].append(checkpoint_id)
            kept: list[str] = []
            dropped: list[str] = []
            for ns, ids in by_ns.items():
                ids.sort(reverse=True)
                kept += [checkpoint_member(ns, i) for i in ids[:keep]]
                dropped += [checkpoint_member(ns, i) for i in ids[keep:]]
            if not dropped:
                continue
            yield from self._removal_steps(thread_id, dropped)
            yield from self._drop_unreferenced_blobs(thread_id, kept)

    def _drop_unreferenced_blobs(self, thread_id: str, kept: Sequence[str]) -> Steps:
        keys = self.thread_keys(thread_id)
        stored, names = yield Batch([("HMGET", keys.data, *kept), ("HKEYS", keys.data)])
        referenced = {
            name
            for value in stored
            if value
            for name in value.partition(b"\x00")[0].decode().split(REFS_SEP)
        }
        orphans = [
            name for name in map(as_text, names) if name.startswith(BLOB) and name not in referenced
        ]
        if orphans:
            yield one("HDEL", keys.data, *orphans)

    def _migrate_thread_steps(self, thread_id: str) -> Steps:
        """Rewrite a thread kept in the first layout (five keys, `memory/keys.py`) in layout 2.

        Records and writes keep their bytes; a channel value's msgpack pair becomes
        `kind ␀ data`; field names gain their kind's mark; the thread's TTL carries over.
        Idempotent: a thread already moved (by another process) has no first-layout keys.
        """
        legacy = self.keys.legacy_checkpoints(thread_id)
        order, checkpoints, blobs, writes, _ = legacy
        members, records, values, pending, pttl = yield Batch(
            [
                ("ZRANGE", order, 0, -1),
                ("HGETALL", checkpoints),
                ("HGETALL", blobs),
                ("HGETALL", writes),
                ("PTTL", order),
            ]
        )
        if not members:
            return
        keys = self.thread_keys(thread_id)
        fields: list[Any] = []
        scored: list[Any] = []
        runs: set[str] = set()
        for name, value in values.items():
            kind, data = ormsgpack.unpackb(value)
            fields += [BLOB + as_text(name), b"".join((kind.encode(), b"\x00", data))]
        for name, value in pending.items():
            fields += [WRITE + as_text(name), value]
            scored += [0, WRITE + as_text(name)]
        for name in map(as_text, members):
            record = records.get(name.encode())
            if record is None:
                continue
            joined = as_text(records.get(f"{name}{SEP}refs".encode(), b""))
            refs = REFS_SEP.join(BLOB + ref for ref in joined.split(REFS_SEP) if ref)
            fields += [CHECKPOINT + name, b"".join((refs.encode(), b"\x00", record))]
            scored += [0, CHECKPOINT + name]
            _, _, md_kind, md_data, _ = ormsgpack.unpackb(record)
            run_id = self.serde.loads_typed((md_kind, md_data)).get("run_id")
            if run_id:
                runs.add(str(run_id))
                scored += [0, f"{RUN}{run_id}{SEP}{name}"]
        expire = [("PEXPIRE", key, pttl) for key in keys.all] if pttl > 0 else []
        moved: list[Command] = [("HSET", keys.data, *fields)] if fields else []
        if scored:
            moved += [("ZADD", keys.index, *scored), *expire]
        yield Batch([*moved, ("DEL", *legacy)], transaction=True)
        if runs:
            yield Batch([self._index_run(run_id, thread_id) for run_id in sorted(runs)])
