"""Every key ALMA writes to Redis, named in one place.

All of them start with one prefix (`ALMA_REDIS_PREFIX`, `alma` by default), so several
deployments can share a database. A thread's keys carry its id as a hash tag
(`{thread_id}`): in a Redis Cluster they share one slot, so a thread's scripts and
transactions touch one node. An owner's index and a key's connection slots are tagged
by the owner and the key the same way.

- `<p>:{T}:order`, `:checkpoints`, `:blobs`, `:writes`, `:write_index`: the thread's
  checkpoints (their contents: `memory/layout.py`); `<p>:run:{R}`: what run `R` wrote
- `<p>:{T}:events` (stream): the thread's numbered events, for replay and resume
- `<p>:{T}:owner`, `:thread`, `:runs`, `:active`: its owner, record, run records and
  the lease of its running run
- `<p>:owner:{O}:threads`, `:titles`: an owner's threads, newest first, and their titles
- `<p>:connections:{K}`: a key's open connections; `<p>:limits…`: rate-limit windows
- `<p>:{cache}:…`: cached node answers; `<p>:control`: the pub/sub channel of cancels
  and run starts between processes
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ThreadKeys:
    """The Redis keys of one thread's checkpoints."""

    order: str
    checkpoints: str
    blobs: str
    writes: str
    write_index: str

    @property
    def all(self) -> tuple[str, str, str, str, str]:
        """Every key, in the order `LOAD_CHECKPOINT` expects them."""
        return (self.order, self.checkpoints, self.blobs, self.writes, self.write_index)


@dataclass(frozen=True)
class RedisKeys:
    """The key schema under one prefix."""

    prefix: str = "alma"

    def _thread(self, thread_id: str, name: str) -> str:
        return f"{self.prefix}:{{{thread_id}}}:{name}"

    def checkpoints(self, thread_id: str) -> ThreadKeys:
        """The keys of a thread's checkpoints."""
        return ThreadKeys(
            order=self._thread(thread_id, "order"),
            checkpoints=self._thread(thread_id, "checkpoints"),
            blobs=self._thread(thread_id, "blobs"),
            writes=self._thread(thread_id, "writes"),
            write_index=self._thread(thread_id, "write_index"),
        )

    def checkpoints_of_run(self, run_id: str) -> str:
        """The set of checkpoints a run wrote."""
        return f"{self.prefix}:run:{{{run_id}}}"

    def events(self, thread_id: str) -> str:
        """The thread's event log."""
        return self._thread(thread_id, "events")

    def owner(self, thread_id: str) -> str:
        """Who owns the thread."""
        return self._thread(thread_id, "owner")

    def thread(self, thread_id: str) -> str:
        """The thread's record."""
        return self._thread(thread_id, "thread")

    def runs(self, thread_id: str) -> str:
        """The thread's run records."""
        return self._thread(thread_id, "runs")

    def lease(self, thread_id: str) -> str:
        """The lease of the thread's running run."""
        return self._thread(thread_id, "active")

    def owner_threads(self, owner: str) -> str:
        """An owner's threads, by last use."""
        return f"{self.prefix}:owner:{{{owner}}}:threads"

    def owner_titles(self, owner: str) -> str:
        """The titles of an owner's threads."""
        return f"{self.prefix}:owner:{{{owner}}}:titles"

    def connections(self, limit_key: str) -> str:
        """A key's open connection slots."""
        return f"{self.prefix}:connections:{{{limit_key}}}"

    @property
    def limits(self) -> str:
        """The prefix of the rate limiter's windows."""
        return f"{self.prefix}:limits"

    @property
    def cache(self) -> str:
        """The prefix of cached node answers (one slot: a step reads several at once)."""
        return f"{self.prefix}:{{cache}}:"

    @property
    def control(self) -> str:
        """The channel processes tell each other of cancels and run starts on."""
        return f"{self.prefix}:control"
