"""Administration: re-ingest the textbook into the vector store."""

from __future__ import annotations

from dataclasses import replace

from fastapi import APIRouter, HTTPException, Request, status
from starlette.concurrency import run_in_threadpool

from textbook.api.deps import AdminUser, SettingsDep, StoreDep
from textbook.api.responses import errors
from textbook.api.schemas import IngestResponse

router = APIRouter(prefix="/admin", tags=["admin"])


@router.post(
    "/ingest",
    response_model=IngestResponse,
    operation_id="ingest",
    responses=errors(
        401, 403, 429, 500, 503, e403="Admin role required", e500="No chapter could be read"
    ),
)
async def ingest(
    request: Request, _admin: AdminUser, store: StoreDep, settings: SettingsDep
) -> IngestResponse:
    """(Re)index settings.content_path; unchanged chunks are kept (content-hash ids).

    Files that cannot be read are listed in `skipped` and the rest is indexed; chapters no
    longer on disk are deleted unless a file was skipped.
    """
    try:
        report = await run_in_threadpool(store.ingest, settings.content_path)
    except ValueError as exc:  # CONTENT_PATH does not exist on the server
        raise HTTPException(
            status.HTTP_500_INTERNAL_SERVER_ERROR,
            f"The textbook content could not be ingested: {exc}",
        ) from exc
    if not report.chapters:
        raise HTTPException(
            status.HTTP_500_INTERNAL_SERVER_ERROR,
            f"The textbook content has no chapter to ingest; skipped: {report.skipped}",
        )
    request.app.state.library.invalidate()
    return IngestResponse.model_validate(replace(report, seconds=round(report.seconds, 3)))
