"""The checkpointer for a service without Redis: LangGraph's in-memory saver, copying too."""

from __future__ import annotations

from langgraph.checkpoint.memory import InMemorySaver


class ProcessMemorySaver(InMemorySaver):
    """`InMemorySaver` that can also copy a thread, as ALMA's Redis saver can.

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
