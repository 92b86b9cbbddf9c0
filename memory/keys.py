"""Every key ALMA writes to Redis, named in one place.

All of them start with one prefix (`ALMA_REDIS_PREFIX`, `alma` by default), so several
deployments can share a database. A thread's keys carry its id as a hash tag
(`{thread_id}`): in a Redis Cluster they share one slot, so a thread's scripts and
transactions touch one node. An owner's index and a key's connection slots are tagged
by the owner and the key the same way.

- `<p>:{T}:checkpoints:v2` (hash) and `<p>:{T}:order:v2` (sorted set): the thread's
  checkpoints, channel values and pending writes (layout: `memory/layout.py`);
  `<p>:run:v2:{R}`: the threads run `R` wrote checkpoints to. (The `v2` marks the
  layout: the savers' `setup` moves threads of the first layout, without it, into this
  one, then notes so in `<p>:checkpoint-layout`.)
- `<p>:{T}:events` (stream): the thread's numbered events, for replay and resume
- `<p>:{T}:owner`, `:thread`, `:runs`, `:active`: its owner, record, run records and
  the lease of its running run
- `<p>:owner:{O}:threads`, `:titles`: an owner's threads, newest first, and their titles
- `<p>:connections:{K}`: a key's open connections; `<p>:limits…`: rate-limit windows
- `<p>:{cache}:…`: cached node answers; `<p>:control`: the pub/sub channel of cancels
  and run starts between processes
- `<p>:store:{N}:i:<key>`, `:keys`, `:meta`: the long-term memory store's items of
  namespace `N` and their order; `<p>:{store}:namespaces`, `:namespace-info`,
  `:namespace-seq`: its index of namespaces (layout: `memory/store.py`)
- `<p>:{crons}:records`, `:due`, `:owner:<O>`: crons, when each next ticks, and an
  owner's crons (one slot, so a tick is claimed by one script: `server/stores/crons.py`)
"""

from __future__ import annotations

from dataclasses import dataclass

LEGACY_THREAD_KEYS = ("order", "checkpoints", "blobs", "writes", "write_index")
"""A thread's checkpoint keys in the first layout (before 2026-12), by name."""


@dataclass(frozen=True, slots=True)
class ThreadKeys:
    """The Redis keys of one thread's checkpoints (layout 2: `memory/layout.py`)."""

    data: str
    """Hash: checkpoint records, channel values and pending writes."""
    index: str
    """Sorted set: the checkpoints in order, and the writes and runs of each."""

    @property
    def all(self) -> tuple[str, str]:
        """Every key, in the order the layout's scripts expect them."""
        return (self.data, self.index)


@dataclass(frozen=True, slots=True)
class StoreNamespaceKeys:
    """The Redis keys of one namespace of the store (`memory/store.py`)."""

    keys: str
    """Sorted set: the namespace's item keys, in the order they were first put."""
    meta: str
    """Hash: the namespace's counters (`seq` of its keys, `gen` of its comings into being)."""
    items: str
    """The prefix of its items' keys (hashes), each followed by the item's key."""


@dataclass(frozen=True)
class RedisKeys:
    """The key schema under one prefix."""

    prefix: str = "alma"

    def _thread(self, thread_id: str, name: str) -> str:
        return f"{self.prefix}:{{{thread_id}}}:{name}"

    def checkpoints(self, thread_id: str) -> ThreadKeys:
        """The keys of a thread's checkpoints."""
        return ThreadKeys(
            data=self._thread(thread_id, "checkpoints:v2"),
            index=self._thread(thread_id, "order:v2"),
        )

    def legacy_checkpoints(self, thread_id: str) -> tuple[str, ...]:
        """The keys of a thread's checkpoints in the first layout (deleted with the thread)."""
        return tuple(self._thread(thread_id, name) for name in LEGACY_THREAD_KEYS)

    def legacy_checkpoint_orders(self) -> str:
        """A SCAN pattern matching the `order` key of every thread of the first layout."""
        return self._thread("*", LEGACY_THREAD_KEYS[0])

    def thread_of_legacy_order(self, key: bytes | str) -> str:
        """The thread whose first-layout `order` key `key` is."""
        text = key.decode() if isinstance(key, bytes) else key
        return text[len(self.prefix) + 2 : -len(LEGACY_THREAD_KEYS[0]) - 2]

    def legacy_runs(self) -> str:
        """A SCAN pattern matching the first layout's run indexes."""
        return f"{self.prefix}:run:{{*"

    @property
    def layout(self) -> str:
        """The checkpoint layout every thread under this prefix is in, once migrated."""
        return f"{self.prefix}:checkpoint-layout"

    def checkpoints_of_run(self, run_id: str) -> str:
        """The threads a run wrote checkpoints to."""
        return f"{self.prefix}:run:v2:{{{run_id}}}"

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

    def store_namespace(self, tag: str) -> StoreNamespaceKeys:
        """The keys of one store namespace, by its hash tag (no braces in it)."""
        base = f"{self.prefix}:store:{{{tag}}}"
        return StoreNamespaceKeys(keys=f"{base}:keys", meta=f"{base}:meta", items=f"{base}:i:")

    @property
    def store_index(self) -> str:
        """Sorted set: every store namespace holding items, by name."""
        return f"{self.prefix}:{{store}}:namespaces"

    @property
    def store_index_info(self) -> str:
        """Hash: each indexed store namespace's place and generation (`seq gen`)."""
        return f"{self.prefix}:{{store}}:namespace-info"

    @property
    def store_index_seq(self) -> str:
        """The counter that places store namespaces in the order they came into being."""
        return f"{self.prefix}:{{store}}:namespace-seq"

    @property
    def cron_records(self) -> str:
        """Every cron's record, by id."""
        return f"{self.prefix}:{{crons}}:records"

    @property
    def cron_due(self) -> str:
        """Every cron that will tick again, scored by its next tick (epoch ms)."""
        return f"{self.prefix}:{{crons}}:due"

    def owner_crons(self, owner: str) -> str:
        """An owner's crons (in the crons' slot, not the owner's: one script claims)."""
        return f"{self.prefix}:{{crons}}:owner:{owner}"
