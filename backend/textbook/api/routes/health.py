"""Readiness under /api/v1 (liveness is /health on the app itself)."""

from __future__ import annotations

from fastapi import APIRouter, Request, status
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from textbook.api.schemas import ComponentStatus, HealthResponse
from textbook.core.readiness import check_all

router = APIRouter(tags=["health"])


@router.get(
    "/health",
    response_model=HealthResponse,
    responses={503: {"model": HealthResponse, "description": "Not ready"}},
)
async def readiness(request: Request) -> JSONResponse:
    """200 when the database is at the migration head and the collection exists, else 503."""
    components = await run_in_threadpool(
        check_all, request.app.state.engine, getattr(request.app.state, "store", None)
    )
    ok = all(c.ok for c in components.values())
    body = HealthResponse(
        status="ok" if ok else "unavailable",
        components={k: ComponentStatus(ok=c.ok, detail=c.detail) for k, c in components.items()},
    )
    return JSONResponse(
        body.model_dump(),
        status_code=status.HTTP_200_OK if ok else status.HTTP_503_SERVICE_UNAVAILABLE,
    )
