"""The web page, served by the service itself: no build step, nothing from the internet."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

# Only the page's own files may load; the page talks to nothing but this service.
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)

router = APIRouter(include_in_schema=False)


@router.get("/")
async def read_page() -> FileResponse:
    """The conversation page."""
    return FileResponse(
        STATIC_DIR / "index.html",
        headers={
            "content-security-policy": _CSP,
            "x-content-type-options": "nosniff",
            "referrer-policy": "no-referrer",
            "cache-control": "no-cache",
        },
    )


def static_files() -> StaticFiles:
    """The page's scripts and styles, under `/static`."""
    return StaticFiles(directory=STATIC_DIR)
