"""Readiness under /api/v1 (liveness is /health on the app itself)."""

from __future__ import annotations

from fastapi import APIRouter, Request, status
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from textbook.api.schemas import ComponentStatus, HealthResponse
from textbook.core.readiness import Component, check_database
from textbook.rag.store import Store, check_store

router = APIRouter(tags=["health"])


def check_all(request: Request) -> dict[str, Component]:
    store: Store | None = getattr(request.app.state, "store", None)
    return {
        "database": check_database(request.app.state.engine),
        "vector_store": check_store(store),
    }


@router.get(
    "/health",
    response_model=HealthResponse,
    operation_id="readiness",
    responses={503: {"model": HealthResponse, "description": "Not ready"}},
)
async def readiness(request: Request) -> JSONResponse:
    """200 when the database is at the migration head and the collection exists, else 503."""
    components = await run_in_threadpool(check_all, request)
    ok = all(c.ok for c in components.values())
    body = HealthResponse(
        status="ok" if ok else "unavailable",
        components={k: ComponentStatus(ok=c.ok, detail=c.detail) for k, c in components.items()},
    )
    return JSONResponse(
        body.model_dump(),
        status_code=status.HTTP_200_OK if ok else status.HTTP_503_SERVICE_UNAVAILABLE,
    )
