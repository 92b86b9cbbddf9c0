"""A run request's webhook, checked against the operator's policy as the run is created."""

from __future__ import annotations

from fastapi import HTTPException, status

from server.webhooks.delivery import WebhookSender
from server.webhooks.policy import WebhookRefused


async def check_run_webhook(sender: WebhookSender, url: str | None) -> None:
    """Let a run ask for `url` as its webhook only if the server may call it.

    Raises:
        HTTPException: 422 saying why (and which setting would allow it).
    """
    if url is None:
        return
    try:
        await sender.check(url)
    except WebhookRefused as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
