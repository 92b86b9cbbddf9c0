"""LangGraph's bulk routes: a batch of stateless runs, cancelling many runs, pruning threads.

Each is the one-at-a-time route applied to many: a batch starts each run as
`POST /runs` does, a bulk cancel stops each run as its own cancel does, a prune deletes
each thread as `DELETE /threads/{id}` does (or trims its checkpoints to the latest).
Only the caller's threads and runs are touched: another owner's are as missing ones.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, HTTPException, Query, status
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from server.guard.refusals import Refused
from server.guard.validation import THREAD_ID_PATTERN
from server.langgraph_api.runs import RunCreate, start_request
from server.services import Services
from server.stores.run_records import RunRecord
from server.web.deps import PrincipalDep, ServicesDep, hold_write, http_refusal
from server.web.routes.runs import OriginDep, _start
from server.web.routes.threads import erase_thread

router = APIRouter(tags=["bulk"])

MAX_IDS = 1000
"""Most threads one prune names (the body limit bounds a batch of runs)."""

_ThreadIdText = Annotated[str, StringConstraints(pattern=THREAD_ID_PATTERN)]
_NO_RUNS = "No runs found to cancel."
_NONE_CANCELABLE = (
    "No matching runs to cancel. Please verify the thread ID and run IDs are correct, "
    "and the runs haven't been deleted or completed."
)


class RunsCancel(BaseModel):
    """Which runs to cancel: a thread's `run_ids`, or every run of the caller's in a `status`."""

    model_config = ConfigDict(extra="ignore")

    status: Literal["pending", "running", "all"] | None = None
    thread_id: _ThreadIdText | None = None
    run_ids: list[str] | None = None


class ThreadPrune(BaseModel):
    """Threads to prune, and how: delete them, or keep only their latest checkpoint."""

    model_config = ConfigDict(extra="ignore")

    thread_ids: list[_ThreadIdText] = Field(max_length=MAX_IDS)
    strategy: Literal["delete", "keep_latest"] = "delete"


@router.post(
    "/runs/batch",
    responses={
        404: {"description": "No such assistant."},
        422: {"description": "A bad run in the batch: none of them was started."},
        429: {"description": "Over the caller's run limit; see `Retry-After`."},
    },
)
async def create_run_batch(
    bodies: Annotated[list[RunCreate], Body(min_length=1)],
    services: ServicesDep,
    principal: PrincipalDep,
    origin: OriginDep,
) -> list[dict[str, Any]]:
    """Start a background run on a new, temporary thread for each request; their runs."""
    # A request that cannot start is found before any run starts, so that a bad batch
    # leaves nothing half done (a run refused by a limit, later, still can).
    for body in bodies:
        try:
            start_request(body, principal, None)
        except Refused as exc:
            raise http_refusal(exc) from exc
    created: list[dict[str, Any]] = []
    for body in bodies:
        record = await _start(services, principal, None, body, origin)
        # As created, like `POST /runs` answers: it runs once picked up.
        created.append(dataclasses.replace(record, status="pending").public())
    return created


async def _chosen(services: Services, owner: str, wanted: RunsCancel) -> list[RunRecord]:
    """The caller's runs that `wanted` names."""
    if wanted.status is not None:
        statuses = ("pending", "running") if wanted.status == "all" else (wanted.status,)
        found: list[RunRecord] = []
        for thread in await services.threads.of_owner(owner):
            records = await services.runs.records_of(thread.thread_id)
            found.extend(record for record in records if record.status in statuses)
        return found
    assert wanted.thread_id is not None and wanted.run_ids is not None
    if await services.owners.owner_of(wanted.thread_id) != owner:
        return []
    ids = set(wanted.run_ids)
    return [r for r in await services.runs.records_of(wanted.thread_id) if r.run_id in ids]


@router.post(
    "/runs/cancel",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={
        404: {"description": "None of the runs named is the caller's and still active."},
        422: {"description": "Neither a `status` nor `thread_id` with `run_ids`, or both."},
    },
)
async def cancel_runs(
    wanted: RunsCancel,
    services: ServicesDep,
    principal: PrincipalDep,
    action: Annotated[Literal["interrupt", "rollback"], Query()] = "interrupt",
) -> None:
    """Cancel a thread's `run_ids`, or every one of the caller's runs in `status`."""
    if wanted.status is not None and (wanted.thread_id or wanted.run_ids):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "When providing a 'status', 'thread_id' and 'run_ids' must be omitted. The "
            "'status' parameter cancels all runs with the given status, regardless of "
            "thread or run ID.",
        )
    if wanted.status is None and (wanted.thread_id is None or wanted.run_ids is None):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "Must provide either a status, or both 'thread_id' and 'run_ids'",
        )
    await hold_write(services, principal)
    chosen = await _chosen(services, principal.owner, wanted)
    if not chosen:
        raise HTTPException(status.HTTP_404_NOT_FOUND, _NO_RUNS)
    cancelled = 0
    for record in chosen:
        if record.status not in ("pending", "running"):
            continue
        try:
            await services.runs.cancel(record.thread_id, record.run_id, action=action)
        except Refused:
            continue  # it ended meanwhile
        cancelled += 1
    if not cancelled:
        raise HTTPException(status.HTTP_404_NOT_FOUND, _NONE_CANCELABLE)


@router.post(
    "/threads/prune",
    responses={422: {"description": "A bad thread id or strategy, or `keep_latest` "
                                    "without Redis."}},
)  # fmt: skip
async def prune_threads(
    body: ThreadPrune, services: ServicesDep, principal: PrincipalDep
) -> dict[str, int]:
    """Delete the caller's threads named, or keep just their latest checkpoints.

    Threads that are missing or another owner's are left out of `pruned_count`.
    """
    if not body.thread_ids:
        return {"pruned_count": 0}
    await hold_write(services, principal)
    owned = [
        thread_id
        for thread_id in dict.fromkeys(body.thread_ids)
        if await services.owners.owner_of(thread_id) == principal.owner
    ]
    if body.strategy == "delete":
        for thread_id in owned:
            await erase_thread(services, thread_id)
        return {"pruned_count": len(owned)}
    try:
        await services.memory.checkpointer.aprune(owned, strategy="keep_latest")
    except NotImplementedError as exc:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "keep_latest needs conversations kept in Redis (ALMA_REDIS_URL); this server "
            "keeps them in its process memory",
        ) from exc
    return {"pruned_count": len(owned)}
