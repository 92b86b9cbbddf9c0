"""The shape of a JSON answer, to compare ALMA's answers with `langgraph dev`'s.

Two servers running the same graph give different ids, times and generated text, so
answers are compared by shape: which keys exist, and what kind of value each holds.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from typing import Any

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_ID_IN_KEY = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")


def kind(value: Any) -> str:
    """A scalar's kind: strings that are uuids or ISO times are told apart."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        if _UUID.match(value):
            return "uuid"
        if _TIME.match(value):
            return "time"
        return "str"
    return type(value).__name__


def shape(value: Any) -> Any:
    """Keys and kinds, recursively; a list's items merge into one shape."""
    if isinstance(value, dict):
        # Keys that hold ids (message ids, `analytical:<task id>`) differ on every run.
        shaped: dict[str, Any] = {}
        for key, item in value.items():
            name = _ID_IN_KEY.sub("<id>", str(key))
            shaped[name] = _merge_two(shaped[name], shape(item)) if name in shaped else shape(item)
        return shaped
    if isinstance(value, list):
        return [merge(shape(item) for item in value)] if value else []
    return kind(value)


def merge(shapes: Iterable[Any]) -> Any:
    """One shape for several: dicts join their keys; differing kinds become a set."""
    merged: Any = None
    for one in shapes:
        merged = one if merged is None else _merge_two(merged, one)
    return merged


def _merge_two(a: Any, b: Any) -> Any:
    if isinstance(a, dict) and isinstance(b, dict):
        return {k: _merge_two(a[k], b[k]) if k in a and k in b else a.get(k, b.get(k))
                for k in {**a, **b}}  # fmt: skip
    if isinstance(a, list) and isinstance(b, list):
        return [merge([*a, *b])] if a or b else []
    if a == b:
        return a
    kinds = (set(a) if isinstance(a, frozenset) else {str(a)}) | (
        set(b) if isinstance(b, frozenset) else {str(b)}
    )
    return frozenset(kinds)


SERVER_KEYS = frozenset({
    "langgraph_api_version", "langgraph_plan", "langgraph_host", "langgraph_api_url",
    "langgraph_request_id", "__request_start_time_ms__", "__after_seconds__",
    "langgraph_auth_user", "langgraph_auth_user_id", "langgraph_auth_permissions",
    "langgraph_version", "run_attempt", "user_id", "__context_provided__",
    "__pregel_node_finished",
})  # fmt: skip
"""Keys `langgraph dev` adds about its own deployment, which ALMA has no use for."""


def differences(
    alma: Any,
    dev: Any,
    path: str = "$",
    *,
    lenient: bool = True,
    ignore: Collection[str] = SERVER_KEYS,
) -> list[str]:
    """Where ALMA's answer differs in shape from `langgraph dev`'s (empty: the same).

    With `lenient`, a key that ALMA adds is allowed (an extension), and `null` on either
    side matches any kind (a field not filled in this particular run). Keys in `ignore`
    are not compared wherever they appear.
    """
    a, d = shape(alma), shape(dev)
    return _diff(a, d, path, lenient, frozenset(ignore))


def _diff(a: Any, d: Any, path: str, lenient: bool, ignore: frozenset[str]) -> list[str]:
    if lenient and ("null" in (a, d)):
        return []
    if isinstance(a, dict) and isinstance(d, dict):
        found = [f"{path}.{k}: missing" for k in d if k not in a and k not in ignore]
        if not lenient:
            found += [f"{path}.{k}: extra" for k in a if k not in d and k not in ignore]
        for key in (a.keys() & d.keys()) - ignore:
            found += _diff(a[key], d[key], f"{path}.{key}", lenient, ignore)
        return found
    if isinstance(a, list) and isinstance(d, list):
        if not a or not d:
            return []  # an empty list says nothing of its items' shape
        return _diff(a[0], d[0], f"{path}[]", lenient, ignore)
    if a != d:
        return [f"{path}: {a} != {d}"]
    return []
