"""LangGraph's crons over HTTP: create, get, update, search, count and delete them.

A cron runs on a new thread each tick, or on one of the caller's threads. Paths,
bodies and answers follow `langgraph dev`. A cron belongs to the key that made it:
another owner's cron is answered as a missing one, searches and counts see only the
caller's. Creating, changing and deleting one counts against the caller's write
budget; the runs it starts count against their run limit (`engine/cron_scheduler.py`).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Response, status
from pydantic import ValidationError

from server.engine.cron_scheduler import following_tick
from server.guard.auth import Principal
from server.guard.refusals import Refused
from server.guard.validation import check_run_input
from server.langgraph_api.assistants import metadata_contains, resolve_assistant
from server.langgraph_api.crons import (
    CronCount,
    CronCreate,
    CronPatch,
    CronSearch,
    ThreadCronCreate,
    check_schedule,
    tick_request,
)
from server.services import Services
from server.stores.crons import CronRecord, StoredCron
from server.stores.run_records import now_iso
from server.web.deps import (
    PrincipalDep,
    ServicesDep,
    ThreadId,
    hold_write,
    http_refusal,
    require_own_thread,
)

router = APIRouter(tags=["crons"])

_NO_CRON: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such cron, or it belongs to another owner."},
    422: {"description": "The cron id is not a UUID."},
}
_REFUSED: dict[int | str, dict[str, Any]] = {
    403: {"description": "The caller holds the most crons allowed."},
    404: {"description": "No such assistant, or no such thread (or another owner's)."},
    422: {"description": "A bad schedule, timezone or run request."},
    429: {"description": "Over the caller's write limit; see `Retry-After`."},
}
CronId = Annotated[str, Path(max_length=64)]


def _invalid(message: str) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, message)


def _uuid(value: str, what: str) -> None:
    try:
        uuid.UUID(value)
    except ValueError as exc:
        raise _invalid(f"Invalid {what}: must be a UUID") from exc


def _end_time(value: datetime | None) -> str | None:
    try:
        return value.astimezone(UTC).isoformat() if value is not None else None
    except OverflowError as exc:  # past year 9999 once in UTC
        raise _invalid("end_time is out of range") from exc


def _check_run(services: Services, record: CronRecord) -> None:
    """Refuse now a cron whose runs would be refused at every tick."""
    settings = services.settings
    try:
        request = tick_request(record, None)
        if request.input is not None:
            check_run_input(
                request.input,
                max_messages=settings.max_messages,
                max_chars=settings.max_message_chars,
            )
        services.runs.check(request)
    except ValidationError as exc:
        raise _invalid(f"the cron's run request is not valid: {exc.errors()[0]['msg']}") from exc
    except Refused as exc:
        raise http_refusal(exc) from exc


def _naming_cron(payload: dict[str, Any], cron_id: str) -> dict[str, Any]:
    """The payload's run config with the cron named in its configurable."""
    config = dict(payload.get("config") or {})
    config["configurable"] = {**(config.get("configurable") or {}), "cron_id": cron_id}
    return config


def _schedule(record: CronRecord) -> int | None:
    """When a cron that is created or changed now first ticks."""
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    return following_tick(record, now_ms, now_ms)


async def _create(
    services: Services,
    principal: Principal,
    body: CronCreate | ThreadCronCreate,
    thread_id: str | None,
) -> dict[str, Any]:
    assistant_id = resolve_assistant(body.assistant_id)
    if assistant_id is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"Assistant '{body.assistant_id}' not found")
    try:
        check_schedule(body.schedule, body.timezone)
    except Refused as exc:
        raise http_refusal(exc) from exc
    if thread_id is not None:
        await require_own_thread(services, thread_id, principal.owner)
    cron_id = str(uuid.uuid4())
    # The request as sent (LangGraph's `payload`), its assistant resolved and the cron
    # named in its configurable, as LangGraph's server stores it.
    payload = body.model_dump(mode="json", exclude_unset=True)
    payload["assistant_id"] = assistant_id
    if body.end_time is not None:
        payload["end_time"] = _end_time(body.end_time)
    payload["config"] = _naming_cron(payload, cron_id)
    record = CronRecord(
        cron_id=cron_id, owner=principal.owner, limit_key=principal.limit_key,
        assistant_id=assistant_id, thread_id=thread_id, schedule=body.schedule,
        payload=payload, timezone=body.timezone, end_time=_end_time(body.end_time),
        on_run_completed=body.on_run_completed if isinstance(body, CronCreate) else None,
        enabled=body.enabled, metadata=body.metadata,
    )  # fmt: skip
    # Checked before the write is counted: a refused cron spends none of the budget.
    _check_run(services, record)
    await hold_write(services, principal, metadata=body.metadata)
    held = len(await services.crons.of_owner(principal.owner))
    if held >= services.settings.max_crons_per_owner:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"{principal.owner} holds {held} crons, the most allowed "
            "(ALMA_MAX_CRONS_PER_OWNER); delete some first",
        )
    next_run = _schedule(record)
    await services.crons.put(record, next_run)
    services.cron_scheduler.wake()
    return record.public(next_run)


async def _owned(services: Services, cron_id: str, owner: str) -> StoredCron:
    _uuid(cron_id, "cron ID")
    stored = await services.crons.get(cron_id)
    if stored is None or stored.record.owner != owner:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"Cron '{cron_id}' not found")
    return stored


async def _matching(
    services: Services,
    owner: str,
    assistant_id: str | None,
    thread_id: str | None,
    metadata: dict[str, Any] | None,
) -> list[StoredCron]:
    # Assistant ids must be uuids, as on LangGraph's server; thread ids need not be
    # (ALMA's threads may have other ids).
    if assistant_id:
        _uuid(assistant_id, "assistant ID")
    return [
        stored
        for stored in await services.crons.of_owner(owner)
        if (not assistant_id or stored.record.assistant_id == str(uuid.UUID(assistant_id)))
        and (not thread_id or stored.record.thread_id == thread_id)
        and (not metadata or metadata_contains(stored.record.metadata, metadata))
    ]


# -- routes --------------------------------------------------------------------------------


@router.post("/runs/crons", responses=_REFUSED)
async def create_cron(
    body: CronCreate, services: ServicesDep, principal: PrincipalDep
) -> dict[str, Any]:
    """A cron whose every tick runs on a new thread (kept or deleted after the run)."""
    return await _create(services, principal, body, None)


@router.post("/threads/{thread_id}/runs/crons", responses=_REFUSED)
async def create_thread_cron(
    thread_id: ThreadId, body: ThreadCronCreate, services: ServicesDep, principal: PrincipalDep
) -> dict[str, Any]:
    """A cron whose every tick runs on the caller's thread `thread_id`."""
    return await _create(services, principal, body, thread_id)


@router.post("/runs/crons/search", responses={422: {"description": "An id is not a UUID."}})
async def search_crons(
    search: CronSearch, response: Response, services: ServicesDep, principal: PrincipalDep
) -> list[dict[str, Any]]:
    """The caller's crons that match, a page at a time (`X-Pagination-*` as for threads)."""
    found = await _matching(
        services, principal.owner, search.assistant_id, search.thread_id, search.metadata
    )
    if search.enabled is not None:
        found = [stored for stored in found if stored.record.enabled == search.enabled]
    crons = [stored.public() for stored in found]
    crons.sort(
        key=lambda cron: str(cron[search.sort_by] or ""), reverse=search.sort_order == "desc"
    )
    page = crons[search.offset : search.offset + search.limit]
    response.headers["X-Pagination-Total"] = str(len(crons))
    if search.offset + search.limit < len(crons):
        response.headers["X-Pagination-Next"] = str(search.offset + search.limit)
    fields = set(search.select) if search.select else None
    return [{k: v for k, v in cron.items() if fields is None or k in fields} for cron in page]


@router.post("/runs/crons/count", responses={422: {"description": "An id is not a UUID."}})
async def count_crons(wanted: CronCount, services: ServicesDep, principal: PrincipalDep) -> int:
    """How many of the caller's crons match."""
    found = await _matching(
        services, principal.owner, wanted.assistant_id, wanted.thread_id, wanted.metadata
    )
    return len(found)


@router.get("/runs/crons/{cron_id}", responses=_NO_CRON)
async def get_cron(
    cron_id: CronId, services: ServicesDep, principal: PrincipalDep
) -> dict[str, Any]:
    """One of the caller's crons."""
    return (await _owned(services, cron_id, principal.owner)).public()


@router.patch("/runs/crons/{cron_id}", responses=_NO_CRON | _REFUSED)
async def update_cron(
    cron_id: CronId, body: CronPatch, services: ServicesDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Change a cron: its schedule, end, whether it runs, or the run it starts."""
    changes = body.model_dump(mode="json", exclude_unset=True)
    if not changes:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "Request body cannot be empty")
    stored = await _owned(services, cron_id, principal.owner)
    await hold_write(services, principal, metadata=body.metadata)
    record = stored.record
    if body.schedule is not None or "timezone" in changes:
        try:
            check_schedule(body.schedule or record.schedule, body.timezone)
        except Refused as exc:
            raise http_refusal(exc) from exc
    record = _patched(record, body, changes)
    _check_run(services, record)
    timing = {"schedule", "timezone", "end_time", "enabled"}
    next_run = _schedule(record) if timing & changes.keys() else stored.next_run_ms
    await services.crons.put(record, next_run)
    services.cron_scheduler.wake()
    return record.public(next_run)


def _patched(record: CronRecord, body: CronPatch, changes: dict[str, Any]) -> CronRecord:
    """`record` with `changes`; the payload takes them too, keeping its assistant and id."""
    if "end_time" in changes:
        record.end_time = _end_time(body.end_time)
        changes["end_time"] = record.end_time
    if body.schedule is not None:
        record.schedule = body.schedule
    if "timezone" in changes:
        record.timezone = body.timezone
    if body.enabled is not None:
        record.enabled = body.enabled
    if body.on_run_completed is not None and record.thread_id is None:
        record.on_run_completed = body.on_run_completed
    if body.metadata is not None:
        record.metadata = {**record.metadata, **body.metadata}
    payload = {**record.payload, **changes}
    config = _naming_cron(payload, record.cron_id)
    record.payload = {**payload, "assistant_id": record.assistant_id, "config": config}
    record.updated_at = now_iso()
    return record


@router.delete("/runs/crons/{cron_id}", status_code=status.HTTP_204_NO_CONTENT, responses=_NO_CRON)
async def delete_cron(cron_id: CronId, services: ServicesDep, principal: PrincipalDep) -> None:
    """Delete one of the caller's crons: it starts no more runs."""
    stored = await _owned(services, cron_id, principal.owner)
    await hold_write(services, principal)
    await services.crons.delete(stored.record)
