"""langgraph-sdk's answers, read as the JSON the server sent.

The SDK types its answers with TypedDicts that lack keys ALMA and `langgraph dev` both
return (a thread's `config` and `state_updated_at`; a state's `checkpoint_id` and
`parent_checkpoint_id`, an update's `checkpoint_id`), type a state's `values` as a list
or a dict, and a thread stream's events as a union of protocol TypedDicts. Tests that
read such answers read them through `as_json`, which changes nothing at run time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable, Mapping
from typing import Any, cast

import httpx


def as_json(answer: Mapping[str, Any]) -> dict[str, Any]:
    """The answer itself, typed as the JSON object it is."""
    return cast(dict[str, Any], answer)


def each_as_json(answers: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A list of answers (a thread's history), each read as `as_json` reads it."""
    return [as_json(answer) for answer in answers]


async def status_of(call: Awaitable[Any]) -> int:
    """The HTTP status an SDK call ends with (200 when it succeeds)."""
    try:
        await call
    except httpx.HTTPStatusError as exc:
        return exc.response.status_code
    return 200
