"""Semantic search over the textbook."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from textbook.api.deps import StoreDep
from textbook.api.responses import errors
from textbook.api.schemas import SearchHit, SearchResponse

router = APIRouter(prefix="/search", tags=["search"])
NO_CONTROL_CHARS = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f]*$"


@router.get(
    "",
    response_model=SearchResponse,
    operation_id="search",
    responses=errors(422, 429, 502, 503, e502="The embeddings provider failed"),
)
async def search(
    store: StoreDep,
    q: Annotated[
        str,
        Query(
            min_length=1, max_length=500, pattern=NO_CONTROL_CHARS, description="What to look for"
        ),
    ],
    limit: Annotated[int, Query(ge=1, le=20)] = 5,
    module: Annotated[str | None, Query(max_length=200, pattern=NO_CONTROL_CHARS)] = None,
    chapter: Annotated[str | None, Query(max_length=100, pattern=r"^[a-z0-9][a-z0-9-]*$")] = None,
) -> SearchResponse:
    """Passages ranked by similarity, with the chapter, section and anchor they come from."""
    passages = await run_in_threadpool(store.search, q, limit=limit, module=module, chapter=chapter)
    return SearchResponse(query=q, results=[SearchHit.model_validate(p) for p in passages])
