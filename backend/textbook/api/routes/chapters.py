"""The textbook's chapters and sections, from settings.content_path."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request, status

from textbook.api.responses import errors
from textbook.api.schemas import ChapterSummary, SectionOut, SectionSummary
from textbook.rag.library import ChapterLibrary, section_url
from textbook.rag.types import Chapter

router = APIRouter(prefix="/chapters", tags=["chapters"])
SlugPath = Annotated[str, Path(max_length=100, pattern=r"^[a-z0-9][a-z0-9-]*$")]
AnchorPath = Annotated[str, Path(max_length=200, pattern=r"^[a-z0-9][a-z0-9_-]*$")]


def _library(request: Request) -> ChapterLibrary:
    library: ChapterLibrary = request.app.state.library
    return library


def _summary(chapter: Chapter) -> ChapterSummary:
    return ChapterSummary(
        slug=chapter.slug,
        number=chapter.number,
        title=chapter.title,
        module=chapter.module,
        url=section_url(chapter.slug, ""),
        sections=[
            SectionSummary(title=s.title, anchor=s.anchor, level=s.level) for s in chapter.sections
        ],
    )


@router.get(
    "", response_model=list[ChapterSummary], operation_id="listChapters", responses=errors(429)
)
def list_chapters(request: Request) -> list[ChapterSummary]:
    return [_summary(c) for c in _library(request).chapters()]


@router.get(
    "/{slug}",
    response_model=ChapterSummary,
    operation_id="readChapter",
    responses=errors(404, 422, 429, e404="No such chapter"),
)
def read_chapter(request: Request, slug: SlugPath) -> ChapterSummary:
    chapter = _library(request).chapter(slug)
    if chapter is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"Chapter '{slug}' not found")
    return _summary(chapter)


@router.get(
    "/{slug}/sections/{anchor}",
    response_model=SectionOut,
    operation_id="readSection",
    responses=errors(404, 422, 429, e404="No such chapter or section"),
)
def read_section(request: Request, slug: SlugPath, anchor: AnchorPath) -> SectionOut:
    found = _library(request).section(slug, anchor)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"Section '{slug}#{anchor}' not found")
    chapter, section = found
    return SectionOut(
        chapter=chapter.slug, chapter_title=chapter.title, module=chapter.module, **asdict(section)
    )
