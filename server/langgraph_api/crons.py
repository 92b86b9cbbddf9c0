"""LangGraph's crons, read from the SDK's requests: the schedule, and the run each tick starts.

A cron is a run request kept with a schedule. The request is stored as the SDK sent it
(its `payload`, as LangGraph's server keeps it); at each tick `tick_request` turns it
into the engine's start request for the cron's owner, as a `/runs` route would.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from server.engine import StartRequest
from server.guard.auth import Principal
from server.guard.refusals import Refusal, Refused
from server.langgraph_api.runs import RunCreate, start_request
from server.stores.crons import CronRecord

_Modes = str | list[str]


class _CronFields(BaseModel):
    """What every cron request may carry besides the run it schedules."""

    model_config = ConfigDict(extra="allow")

    schedule: str
    timezone: str | None = None
    end_time: AwareDatetime | None = None
    assistant_id: str
    enabled: bool = True
    metadata: dict[str, Any] = Field(default_factory=dict)


class CronCreate(_CronFields):
    """`POST /runs/crons`: a cron whose every run gets a new thread."""

    on_run_completed: Literal["delete", "keep"] = "delete"


class ThreadCronCreate(_CronFields):
    """`POST /threads/{id}/runs/crons`: a cron whose runs all go to one thread."""

    multitask_strategy: Literal["reject", "enqueue", "interrupt", "rollback"] = "enqueue"


class CronPatch(BaseModel):
    """`PATCH /runs/crons/{id}`: any of a cron's fields; the others stay."""

    model_config = ConfigDict(extra="allow")

    schedule: str | None = None
    timezone: str | None = None
    end_time: AwareDatetime | None = None
    enabled: bool | None = None
    on_run_completed: Literal["delete", "keep"] | None = None
    metadata: dict[str, Any] | None = None


SortBy = Literal[
    "cron_id", "assistant_id", "thread_id", "next_run_date", "end_time", "created_at", "updated_at"
]


class CronSearch(BaseModel):
    """`POST /runs/crons/search`."""

    model_config = ConfigDict(extra="forbid")

    assistant_id: str | None = None
    thread_id: str | None = None
    enabled: bool | None = None
    metadata: dict[str, Any] | None = None
    limit: int = Field(default=10, ge=1, le=1000)
    offset: int = Field(default=0, ge=0)
    sort_by: SortBy = "created_at"
    sort_order: Literal["asc", "desc"] = "desc"
    select: list[str] | None = None


class CronCount(BaseModel):
    """`POST /runs/crons/count`."""

    model_config = ConfigDict(extra="forbid")

    assistant_id: str | None = None
    thread_id: str | None = None
    metadata: dict[str, Any] | None = None


def check_schedule(schedule: str, timezone: str | None) -> None:
    """Refuse a schedule croniter cannot read, or a timezone that is not IANA's.

    Five fields as cron has them; a sixth, seconds, as croniter (and LangGraph's
    server) accepts: `* * * * * *` ticks every second.

    Raises:
        Refused: `INVALID`, naming the bad value.
    """
    refused = Refused(
        Refusal.INVALID,
        f"Invalid cron schedule: {schedule!r}; use the cron format "
        "(minute hour day_of_month month day_of_week [second]), e.g. '*/5 * * * *'",
    )
    if not croniter.is_valid(schedule):
        raise refused
    _zone(timezone)
    try:
        # Valid fields may still name no day at all (`0 0 31 2 *`).
        next_tick(schedule, datetime.now(UTC), timezone)
    except (ValueError, OverflowError) as exc:
        raise refused from exc


def _zone(timezone: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise Refused(
            Refusal.INVALID,
            f"Invalid timezone: {timezone!r}; use an IANA name such as 'Europe/Paris'",
        ) from exc


def next_tick(schedule: str, after: datetime, timezone: str | None = None) -> datetime:
    """The schedule's first tick strictly after `after`, in UTC.

    The schedule is read in `timezone` (UTC without one), so `0 9 * * *` in
    `Europe/Paris` follows Paris's clock changes.
    """
    local = after.astimezone(_zone(timezone))
    tick: datetime = croniter(schedule, local).get_next(datetime)
    return tick.astimezone(UTC)


def tick_request(record: CronRecord, tick: str | None) -> StartRequest:
    """The run tick `tick` of `record` starts, for its owner, under the owner's limits.

    The cron's metadata under the payload's own, as LangGraph's scheduler merges them,
    plus `cron_id` and `cron_tick` (ALMA's own: which cron and tick a run came from);
    a stateless cron's thread is kept after its run when `on_run_completed` says so.

    Raises:
        Refused: `INVALID` for a payload the engine would not start (checked at creation,
            so only a payload stored by another version of ALMA).
    """
    payload = dict(record.payload)
    payload["metadata"] = {
        **record.metadata,
        **(payload.get("metadata") or {}),
        "cron_id": record.cron_id,
        "cron_tick": tick,
    }
    if record.thread_id is None and record.on_run_completed == "keep":
        payload.setdefault("on_completion", "keep")
    body = RunCreate.model_validate(payload)
    principal = Principal(owner=record.owner, limit_key=record.limit_key)
    return start_request(body, principal, record.thread_id)
