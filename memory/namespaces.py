"""Where an owner's items sit in LangGraph's store: under one leading label, the owner's.

The store API's owner scoping (`server/stores/owned_store.py`) and the graph's nodes
that keep what users say (`nodes/memory.py`) both write there, so an owner reads back
through the API exactly what the graph kept for them.
"""

from __future__ import annotations


def owner_label(owner: str) -> str:
    """The leading namespace label of `owner`'s items.

    Owner names may hold periods, which no store label may: they are written `%2E`
    (owner names hold no `%`, so two owners never share a label).
    """
    return owner.replace(".", "%2E")


def owned_namespace(owner: str, namespace: tuple[str, ...]) -> tuple[str, ...]:
    """Where `owner`'s `namespace` is stored."""
    return (owner_label(owner), *namespace)
