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
from memory.layout import HIGH, REFS_SEP, SEP, Removal, as_text, member_of, split_member
from memory.steps import Batch, Steps


class BaseRedisSaver(CheckpointOps):
    """Checkpoint storage on plain Redis data types, shared by the sync and async savers."""

    def _delete_thread_steps(self, thread_id: str) -> Steps:
        keys = self.thread_keys(thread_id)
        yield Batch(lambda p: p.delete(*keys.all), transaction=True)

    def _removal_steps(self, thread_id: str, members: Sequence[str]) -> Steps:
        """Remove checkpoints (by `ns␟id` member) of one thread with their writes."""
        keys = self.thread_keys(thread_id)

        def find_writes(p: Any) -> None:
            for member in members:
                p.zrangebylex(keys.write_index, f"[{member}{SEP}", f"[{member}{SEP}{HIGH}")

        found = yield Batch(find_writes)
        removal = Removal(order=list(members))
        for member, write_fields in zip(members, found, strict=True):
            removal.checkpoints += [member, f"{member}{SEP}refs"]
            removal.writes += [as_text(name) for name in write_fields]

        def remove(p: Any) -> None:
            if removal.checkpoints:
                p.hdel(keys.checkpoints, *removal.checkpoints)
                p.zrem(keys.order, *removal.order)
            if removal.writes:
                p.hdel(keys.writes, *removal.writes)
                p.zrem(keys.write_index, *removal.writes)

        yield Batch(remove, transaction=True)

    def _delete_for_runs_steps(self, run_ids: Sequence[str]) -> Steps:
        if not run_ids:
            return
        run_keys = [self.run_key(run_id) for run_id in run_ids]

        def read(p: Any) -> None:
            for key in run_keys:
                p.smembers(key)

        found = yield Batch(read)
        by_thread: dict[str, list[str]] = defaultdict(list)
        for locations in found:
            for location in locations:
                thread_id, _, member = as_text(location).partition(SEP)
                by_thread[thread_id].append(member)
        for thread_id, members in by_thread.items():
            yield from self._removal_steps(thread_id, sorted(set(members)))

        def forget(p: Any) -> None:
            for key in run_keys:
                p.delete(key)

        yield Batch(forget)

    def _copy_thread_steps(self, source: str, target: str) -> Steps:
        src, dst = self.thread_keys(source), self.thread_keys(target)

        def read(p: Any) -> None:
            p.hgetall(src.checkpoints)
            p.hgetall(src.blobs)
            p.hgetall(src.writes)
            p.zrange(src.order, 0, -1)
            p.zrange(src.write_index, 0, -1)

        checkpoints, blobs, writes, order, write_index = yield Batch(read)
        if not order:
            return
        runs: dict[str, list[str]] = defaultdict(list)
        for name, record in checkpoints.items():
            member = as_text(name)
            if member.endswith(f"{SEP}refs"):
                continue
            _, _, md_kind, md_data, _ = ormsgpack.unpackb(record)
            run_id = self.serde.loads_typed((md_kind, md_data)).get("run_id")
            if run_id:
                runs[str(run_id)].append(f"{target}{SEP}{member}")

        def write(p: Any) -> None:
            p.delete(*dst.all)
            p.hset(dst.checkpoints, mapping=checkpoints)
            if blobs:
                p.hset(dst.blobs, mapping=blobs)
            if writes:
                p.hset(dst.writes, mapping=writes)
                p.zadd(dst.write_index, dict.fromkeys(write_index, 0))
            p.zadd(dst.order, dict.fromkeys(order, 0))
            self._expire(p, dst.all)

        yield Batch(write, transaction=True)
        if runs:

            def index(p: Any) -> None:
                for run_id, locations in runs.items():
                    self._queue_run_index(p, run_id, locations)

            yield Batch(index)

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
                kept += [member_of(ns, i) for i in ids[:keep]]
                dropped += [member_of(ns, i) for i in ids[keep:]]
            if not dropped:
                continue
            yield from self._removal_steps(thread_id, dropped)
            yield from self._drop_unreferenced_blobs(thread_id, kept)

    def _drop_unreferenced_blobs(self, thread_id: str, kept: Sequence[str]) -> Steps:
        keys = self.thread_keys(thread_id)

        def read(p: Any) -> None:
            p.hmget(keys.checkpoints, [f"{member}{SEP}refs" for member in kept])
            p.hkeys(keys.blobs)

        refs, names = yield Batch(read)
        referenced = {
            field for joined in refs if joined for field in as_text(joined).split(REFS_SEP)
        }
        orphans = [as_text(name) for name in names if as_text(name) not in referenced]
        if orphans:
            yield Batch(lambda p: p.hdel(keys.blobs, *orphans), transaction=True)
