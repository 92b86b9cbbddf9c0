"""An owner's view of a shared store answers as a store of their own would.

The same operations go to a plain `InMemoryStore` (the store the owner would have alone)
and to `OwnedStore` over a store other owners write to as well; every answer must agree.
"""

import asyncio
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st
from langgraph.store.memory import InMemoryStore

from memory.namespaces import owned_namespace, owner_label
from server.stores.owned_store import OwnedStore

LABELS = ("a", "b", "alice", "bob")
"""Few labels, so namespaces share prefixes and suffixes, and some name an owner."""

namespaces = st.lists(st.sampled_from(LABELS), min_size=1, max_size=4).map(tuple)
conditions = st.none() | st.lists(st.sampled_from((*LABELS, "*")), min_size=1, max_size=3)
puts = st.lists(st.tuples(namespaces, st.sampled_from(("k1", "k2"))), max_size=12)
listings = st.fixed_dictionaries(
    {
        "prefix": conditions,
        "suffix": conditions,
        "max_depth": st.none() | st.integers(0, 4),
        "limit": st.integers(1, 20),
        "offset": st.integers(0, 5),
    }
)


def listed(namespaces: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    return [tuple(namespace) for namespace in namespaces]


def seen(items: list[Any]) -> list[Any]:
    return [(tuple(item.namespace), item.key, item.value) for item in items]


@settings(max_examples=300, deadline=None)
@given(mine=puts, others=puts, listing=listings, prefix=conditions)
# A wildcard suffix one label longer than a namespace: it must not match the owner's label.
@example(
    mine=[(("a",), "k1"), (("b", "a"), "k1")],
    others=[],
    listing={"prefix": None, "suffix": ["*", "a"], "max_depth": None, "limit": 10, "offset": 0},
    prefix=None,
)
@example(
    mine=[(("a",), "k1"), (("b", "b", "a"), "k2")],
    others=[(("a",), "k1")],
    listing={"prefix": ["b"], "suffix": ["*", "*", "a"], "max_depth": 1, "limit": 5, "offset": 0},
    prefix=["b"],
)
def test_an_owner_sees_what_a_store_of_their_own_would_show(
    mine: list[tuple[tuple[str, ...], str]],
    others: list[tuple[tuple[str, ...], str]],
    listing: dict[str, Any],
    prefix: list[str] | None,
) -> None:
    async def play() -> None:
        alone = InMemoryStore()
        shared = InMemoryStore()
        alice, bob = OwnedStore(shared, "alice"), OwnedStore(shared, "bob")
        for n, (namespace, key) in enumerate(others):
            await bob.aput(namespace, key, {"n": n, "owner": "bob"})
        for n, (namespace, key) in enumerate(mine):
            await alone.aput(namespace, key, {"n": n})
            await alice.aput(namespace, key, {"n": n})
        conditions = {
            **listing,
            "prefix": tuple(listing["prefix"] or ()) or None,
            "suffix": tuple(listing["suffix"] or ()) or None,
        }
        assert listed(await alice.alist_namespaces(**conditions)) == listed(
            await alone.alist_namespaces(**conditions)
        )
        under = tuple(label for label in prefix or () if label != "*")
        assert seen(await alice.asearch(under, limit=100)) == seen(
            await alone.asearch(under, limit=100)
        )
        for namespace, key in mine:
            ours, theirs = await alice.aget(namespace, key), await alone.aget(namespace, key)
            assert ours is not None and theirs is not None
            assert (ours.namespace, ours.value) == (theirs.namespace, theirs.value)

    asyncio.run(play())


async def test_each_owner_has_their_own_items_under_the_same_namespace() -> None:
    shared = InMemoryStore()
    alice, bob = OwnedStore(shared, "alice"), OwnedStore(shared, "bob")
    await alice.aput(("notes",), "k", {"by": "alice"})
    await bob.aput(("notes",), "k", {"by": "bob"})
    await bob.adelete(("notes",), "k")
    mine = await alice.aget(("notes",), "k")
    assert mine is not None and mine.value == {"by": "alice"} and mine.namespace == ("notes",)
    assert await bob.aget(("notes",), "k") is None
    assert await bob.asearch(()) == []
    stored = await shared.asearch(())
    assert [item.namespace for item in stored] == [owned_namespace("alice", ("notes",))]


def test_an_owner_label_is_a_valid_label_and_owners_do_not_share_one() -> None:
    assert owner_label("carol.writer") == "carol%2Ewriter"
    assert "." not in owner_label("a.b.c")
    assert owner_label("a.b") != owner_label("a_b")


def test_the_sync_methods_scope_the_same_way() -> None:
    shared = InMemoryStore()
    alice = OwnedStore(shared, "alice")
    alice.put(("x", "y"), "k", {"n": 1})
    assert alice.list_namespaces() == [("x", "y")]
    assert [item.namespace for item in alice.search(("x",))] == [("x", "y")]
    assert shared.list_namespaces() == [("alice", "x", "y")]
