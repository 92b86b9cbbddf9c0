"""The one way a run starts, whichever wire format asked for it.

Every adapter — the agent protocol's `run.start`, LangGraph's `/runs` routes, the
terminal — reads its own request into a `StartRequest` and hands it here: the input is
validated, the thread's owner checked, the caller's run limit counted, the thread
claimed, and only then is the run started. The checks run in that order so that a
refused start neither uses up a limit it was not going to need nor takes a thread id.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import uuid

from server.engine.manager import RunManager
from server.engine.run import Run, StartRequest
from server.guard.limits import RateLimits, Verdict
from server.guard.refusals import Refusal, Refused
from server.guard.validation import check_run_input, title_of
from server.stores.owners import ThreadOwners

logger = logging.getLogger("alma.engine")


class RunStarter:
    """Checks, limits, claims and starts runs for every wire format."""

    def __init__(
        self,
        *,
        runs: RunManager,
        owners: ThreadOwners,
        limits: RateLimits,
        max_messages: int,
        max_chars: int,
        log_content: bool = False,
    ) -> None:
        """`max_messages`/`max_chars` bound a run's input; `log_content` logs prompts."""
        self.runs = runs
        self.owners = owners
        self.limits = limits
        self.max_messages = max_messages
        self.max_chars = max_chars
        self.log_content = log_content

    async def start(self, request: StartRequest, verdicts: list[Verdict] | None = None) -> Run:
        """Start `request`'s run; the rate-limit verdict is appended to `verdicts`.

        Raises:
            Refused: `INVALID` for a bad input, assistant or context; `NOT_FOUND` for
                another owner's thread, or a missing one the request may not create;
                `LIMITED` over the run limit; `BUSY` or `SHUTTING_DOWN` from the engine.
        """
        if request.input is not None:
            graph_input = check_run_input(
                request.input, max_messages=self.max_messages, max_chars=self.max_chars
            )
            title = title_of(graph_input["messages"])
            request = dataclasses.replace(request, input=graph_input, title=title)
        context = self.runs.check(request)
        thread_id, claim = await self._thread(request)
        verdict = await self.limits.start_run(request.limit_key)
        if verdicts is not None:
            verdicts.append(verdict)
        if not verdict.allowed:
            raise Refused(
                Refusal.LIMITED,
                verdict.explain(request.owner),
                headers=verdict.headers(),
                retry_after=verdict.retry_after,
            )
        # Only a run known to be valid and allowed takes a thread id: a refused one
        # leaves it free for whoever it belongs to.
        if claim and await self.owners.claim(thread_id, request.owner) != request.owner:
            raise _not_found(thread_id)
        run = await self.runs.start(thread_id, request, context)
        self._log(run)
        with contextlib.suppress(Exception):
            # The owner's list of conversations is a convenience: it never fails a run.
            await self.owners.remember(request.owner, thread_id)
        return run

    async def _thread(self, request: StartRequest) -> tuple[str, bool]:
        """The run's thread id, and whether the run must claim it."""
        if request.thread_id is None:
            return str(uuid.uuid4()), True
        owner = await self.owners.owner_of(request.thread_id)
        if owner == request.owner:
            return request.thread_id, False
        # Another owner's thread is as missing as one nobody has; only the latter may
        # be created, when the request allows it.
        if owner is not None or not request.create_thread:
            raise _not_found(request.thread_id)
        return request.thread_id, True

    def _log(self, run: Run) -> None:
        request = run.request
        messages = request.input["messages"] if request.input is not None else []
        logger.info(
            "run %s started on thread %s by %s (%d messages)",
            run.run_id,
            run.thread_id,
            request.owner,
            len(messages),
            extra={"run_id": run.run_id, "thread_id": run.thread_id, "owner": request.owner},
        )
        if self.log_content and messages:
            # Prompts reach the logs only when ALMA_LOG_CONTENT asks for it.
            logger.info("run %s input: %s", run.run_id, messages)


def _not_found(thread_id: str) -> Refused:
    return Refused(Refusal.NOT_FOUND, f"no run can start on thread {thread_id} with this key")
