"""The checkpointer for a service without Redis: LangGraph's in-memory saver, and more.

It also copies a thread and deletes what a run wrote, as the Redis saver does.
"""

from __future__ import annotations

from collections.abc import Sequence

from langgraph.checkpoint.memory import InMemorySaver


class ProcessMemorySaver(InMemorySaver):
    """`InMemorySaver` that can also copy a thread and roll a run back.

    A checkpoint's stored form does not name its thread (the thread is the key it is
    kept under), so a copy is the same entries under the new thread's keys.
    """

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint, write and channel value of a thread onto another, replacing it."""
        self.delete_thread(target_thread_id)
        for ns, checkpoints in self.storage.get(source_thread_id, {}).items():
            self.storage[target_thread_id][ns] = dict(checkpoints)
        for (thread_id, ns, checkpoint_id), writes in list(self.writes.items()):
            if thread_id == source_thread_id:
                self.writes[(target_thread_id, ns, checkpoint_id)] = dict(writes)
        for (thread_id, ns, channel, version), value in list(self.blobs.items()):
            if thread_id == source_thread_id:
                self.blobs[(target_thread_id, ns, channel, version)] = value

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy a thread onto another (in memory: at once)."""
        self.copy_thread(source_thread_id, target_thread_id)

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints the runs wrote, and their pending writes (a rollback)."""
        doomed = set(run_ids)
        for thread_id, namespaces in self.storage.items():
            for ns, checkpoints in namespaces.items():
                for checkpoint_id, (_, metadata, _) in list(checkpoints.items()):
                    if self.serde.loads_typed(metadata).get("run_id") in doomed:
                        del checkpoints[checkpoint_id]
                        self.writes.pop((thread_id, ns, checkpoint_id), None)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Roll runs back (in memory: at once)."""
        self.delete_for_runs(run_ids)
