"""Readiness under /api/v1 (liveness is /health on the app itself)."""

from __future__ import annotations

from fastapi import APIRouter, Request, status
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from textbook.api.errors import RETRY_AFTER_SECONDS
from textbook.api.schemas import ComponentStatus, HealthResponse
from textbook.core.readiness import Readiness

router = APIRouter(tags=["health"])


@router.get(
    "/health",
    response_model=HealthResponse,
    operation_id="readiness",
    responses={503: {"model": HealthResponse, "description": "Not ready"}},
)
async def readiness(request: Request) -> JSONResponse:
    """200 when the database is at the migration head and the collection exists, else 503
    with Retry-After. Checked at most once a second; details that name addresses or quote
    drivers go to the log, not here."""
    checker: Readiness = request.app.state.readiness
    components = await run_in_threadpool(checker.components)
    ok = all(c.ok for c in components.values())
    body = HealthResponse(
        status="ok" if ok else "unavailable",
        components={k: ComponentStatus(ok=c.ok, detail=c.detail) for k, c in components.items()},
    )
    if ok:
        return JSONResponse(body.model_dump())
    return JSONResponse(
        body.model_dump(),
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


router.add_api_route(
    "/health",
    readiness,
    methods=["HEAD"],
    operation_id="readinessHead",
    summary="Readiness, for monitors (the GET's status and headers)",
    responses={503: {"description": "Not ready"}},
)
