"""Calling a run's webhook when it ends: in the background, retried, bounded in time.

The payload is the run as LangGraph's server sends it: the Run object with its final
`status`, when it started and ended, when the call was sent, the thread's final
`values`, and `error` for a run that failed. Each attempt resolves and checks the host
again (`policy.resolve`) and connects to an address it checked, so the call cannot be
steered inward after the run was created. A failed call is logged, never raised: the
run has ended, whatever its webhook does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime
from typing import Any

import httpx
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from server.engine.events import dumps
from server.version import VERSION
from server.webhooks.policy import (
    IPAddress,
    Resolver,
    Target,
    WebhookPolicy,
    WebhookRefused,
    system_resolver,
)

logger = logging.getLogger("alma.webhooks")


class _TryAgain(Exception):
    """An attempt that may succeed later: no answer, or a 5xx or 429 one."""


def iso_at(epoch: float) -> str:
    """`epoch` seconds as an ISO 8601 UTC time."""
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def run_payload(
    run: dict[str, Any], *, values: Any, started_at: float, ended_at: float
) -> dict[str, Any]:
    """What a webhook is sent for the ended run `run` (its public record)."""
    # `webhook_sent_at` is added by each attempt, as it is sent.
    return {
        **run,
        "run_started_at": iso_at(started_at),
        "run_ended_at": iso_at(ended_at),
        "values": values,
    }


class WebhookSender:
    """Checks webhook URLs, and calls them in the background when runs end."""

    def __init__(
        self,
        policy: WebhookPolicy,
        *,
        timeout: float,
        attempts: int,
        backoff: float,
        resolver: Resolver = system_resolver,
    ) -> None:
        """`attempts` calls at most, `backoff` seconds before the second (doubling)."""
        self.policy = policy
        self.timeout = timeout
        self.attempts = attempts
        self.backoff = backoff
        self.resolver = resolver
        # Never through a proxy from the environment, never after a redirect: either
        # would send the call somewhere the policy did not check.
        self._client = httpx.AsyncClient(
            timeout=timeout,
            trust_env=False,
            follow_redirects=False,
            headers={"user-agent": f"alma/{VERSION} webhook"},
        )
        self._tasks: set[asyncio.Task[bool]] = set()

    async def check(self, url: str) -> None:
        """Refuse a webhook URL the policy does not allow (for a run being created).

        Raises:
            WebhookRefused: saying why.
        """
        await self.policy.resolve(self.policy.parse(url), self.resolver)

    def send(self, url: str, payload: dict[str, Any]) -> None:
        """Call `url` with `payload` in the background; its end is only logged."""
        task = asyncio.get_running_loop().create_task(self.deliver(url, payload))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def deliver(self, url: str, payload: dict[str, Any]) -> bool:
        """Call `url` until it accepts `payload` or the attempts run out; whether it did."""
        run_id = payload.get("run_id")
        try:
            target = self.policy.parse(url)
            retrying = AsyncRetrying(
                stop=stop_after_attempt(self.attempts),
                wait=wait_exponential(multiplier=self.backoff, max=60),
                retry=retry_if_exception_type(_TryAgain),
                reraise=True,
            )
            async for attempt in retrying:
                with attempt:
                    await self._attempt(target, payload)
        except WebhookRefused as exc:
            logger.warning("webhook of run %s not called: %s", run_id, exc)
            return False
        except (_TryAgain, httpx.HTTPStatusError) as exc:
            logger.warning("webhook of run %s failed: %s", run_id, exc)
            return False
        logger.info("webhook of run %s called", run_id, extra={"run_id": run_id})
        return True

    async def _attempt(self, target: Target, payload: dict[str, Any]) -> None:
        addresses = await self.policy.resolve(target, self.resolver)
        body = dumps({**payload, "webhook_sent_at": iso_at(time.time())})
        try:
            response = await self._client.send(self._pinned(target, addresses[0], body))
        except httpx.TransportError as exc:
            raise _TryAgain(f"no answer from {target.host}: {exc!r}") from exc
        await response.aclose()
        if response.status_code >= 500 or response.status_code == 429:
            raise _TryAgain(f"{target.host} answered {response.status_code}")
        response.raise_for_status()  # another 4xx: the receiver will not change its mind

    def _pinned(self, target: Target, address: IPAddress, body: bytes) -> httpx.Request:
        """The request to `target`, sent to `address` (checked) rather than resolved again."""
        url = httpx.URL(target.url)
        headers = {"content-type": "application/json", "host": url.netloc.decode()}
        pinned = url.copy_with(host=str(address))
        # TLS is still checked against the host's name, not the address.
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        return self._client.build_request(
            "POST", pinned, content=body, headers=headers, extensions=extensions
        )

    async def aclose(self, grace: float) -> None:
        """Let calls under way finish for `grace` seconds, then stop them."""
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self._client.aclose()
