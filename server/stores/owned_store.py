"""One owner's view of LangGraph's store: their items only, under namespaces they chose.

Every item an owner writes is stored under one more leading label, the owner's
(`("alice", "notes")` for alice's `("notes",)`), and that label is taken off everything
read back. An owner therefore reaches only their own items, and sees namespaces exactly
as they wrote them. `OwnedStore` is itself a `BaseStore`, so the HTTP routes and the
graph's nodes use the same scoping through LangGraph's own store methods (which also
validate the owner's namespaces as they would the store's).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, cast

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
)

from memory.namespaces import owner_label

FULL_LISTING = 10_000
"""The most namespaces read to answer a listing the store cannot narrow by itself."""

_Finish = Callable[[Result], Result]


class OwnedStore(BaseStore):
    """`store` as one owner sees it."""

    def __init__(self, store: BaseStore, owner: str) -> None:
        """Scope `store` to `owner`; its TTL support and settings are the store's."""
        self.store = store
        self.owner = owner
        self.label = owner_label(owner)
        self.supports_ttl = store.supports_ttl
        self.ttl_config = store.ttl_config

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run `ops` on the owner's part of the store."""
        mapped = [self._map(op) for op in ops]
        results = self.store.batch([op for op, _ in mapped])
        return [finish(result) for (_, finish), result in zip(mapped, results, strict=True)]

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """Run `ops` on the owner's part of the store."""
        mapped = [self._map(op) for op in ops]
        results = await self.store.abatch([op for op, _ in mapped])
        return [finish(result) for (_, finish), result in zip(mapped, results, strict=True)]

    def _own(self, namespace: tuple[str, ...]) -> tuple[str, ...]:
        return (self.label, *namespace)

    def _shown(self, namespace: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(namespace[1:])

    def _item(self, item: Any) -> Any:
        """An item read from the store, with the owner's label taken off."""
        if isinstance(item, SearchItem):
            return SearchItem(
                self._shown(item.namespace), item.key, item.value,
                item.created_at, item.updated_at, item.score,
            )  # fmt: skip
        if isinstance(item, Item):
            return Item(
                value=item.value, key=item.key, namespace=self._shown(item.namespace),
                created_at=item.created_at, updated_at=item.updated_at,
            )  # fmt: skip
        return item

    def _map(self, op: Op) -> tuple[Op, _Finish]:
        """The store's op for the owner's `op`, and how to show the owner its result."""
        if isinstance(op, GetOp):
            return op._replace(namespace=self._own(op.namespace)), self._item
        if isinstance(op, PutOp):
            return op._replace(namespace=self._own(op.namespace)), lambda result: result
        if isinstance(op, SearchOp):
            found = op._replace(namespace_prefix=self._own(op.namespace_prefix))
            return found, lambda items: [self._item(item) for item in items or []]
        if isinstance(op, ListNamespacesOp):
            return self._map_listing(op)
        raise TypeError(f"unknown store operation {type(op).__name__}")

    def _map_listing(self, op: ListNamespacesOp) -> tuple[Op, _Finish]:
        conditions = list(op.match_conditions or ())
        prefixes = [c for c in conditions if c.match_type == "prefix"]
        suffixes = [c for c in conditions if c.match_type != "prefix"]
        # Every listing is anchored at the owner's label: with no prefix of their own,
        # the owner's prefix is the label alone.
        anchored = [MatchCondition("prefix", self._own(tuple(c.path))) for c in prefixes] or [
            MatchCondition("prefix", (self.label,))
        ]
        # The stored namespaces are one label longer: depth counts it.
        depth = None if op.max_depth is None else op.max_depth + 1
        if not any(self._may_reach_label(c) for c in suffixes):
            listing = op._replace(match_conditions=(*anchored, *suffixes), max_depth=depth)
            return listing, self._namespaces
        # A suffix whose first label can match the owner's (a wildcard, most often) would
        # also match the owner's namespaces one label shorter than itself, which do not
        # match it as the owner wrote them: read them all, keep the true matches, and
        # cut, sort and page as the store does.
        longest = max(len(c.path) for c in suffixes)
        every = ListNamespacesOp((*anchored, *suffixes), None, FULL_LISTING, 0)

        def finish(result: Result) -> Result:
            shown = [self._shown(ns) for ns in _listed(result) if len(ns) > longest]
            if op.max_depth is not None:
                shown = list({ns[: op.max_depth] for ns in shown})
            return sorted(shown)[op.offset : op.offset + op.limit]

        return every, finish

    def _may_reach_label(self, condition: MatchCondition) -> bool:
        return bool(condition.path) and condition.path[0] in ("*", self.label)

    def _namespaces(self, result: Result) -> Result:
        return [self._shown(ns) for ns in _listed(result)]


def _listed(result: Result) -> list[tuple[str, ...]]:
    """A namespace listing's result, as what it is."""
    return cast(list[tuple[str, ...]], result or [])
