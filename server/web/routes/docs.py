"""The API's documentation: OpenAPI and Swagger UI, keyed in production like every route.

FastAPI serves these unguarded; here they go through the same check as `/metrics`, so an
operator decides whether a deployment publishes its API (`ALMA_OPEN_ENDPOINTS=docs`).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from server.web.deps import operator_endpoint

router = APIRouter(include_in_schema=False, dependencies=[Depends(operator_endpoint("docs"))])


@router.get("/openapi.json")
async def read_openapi(request: Request) -> JSONResponse:
    """The OpenAPI schema of every route."""
    return JSONResponse(request.app.openapi())


@router.get("/docs")
async def read_docs(request: Request) -> HTMLResponse:
    """Swagger UI over the schema."""
    return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{request.app.title} — API")
