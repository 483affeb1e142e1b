"""Value types shared by retrieval (textbook.rag) and the API (textbook.api)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Passage:
    """One retrieved chunk of the textbook with where it came from."""

    chunk_id: str  # content-hash key of the chunk
    module: str
    chapter: str  # chapter slug, e.g. "ros2-foundations"
    chapter_title: str
    section: str  # section heading text
    anchor: str  # URL fragment of the section, e.g. "quality-of-service"
    text: str
    score: float = 0.0


@dataclass(frozen=True, slots=True)
class Section:
    title: str
    anchor: str
    level: int  # 2 for "##", 3 for "###"
    text: str  # Markdown body of the section (without its heading)


@dataclass(frozen=True, slots=True)
class Chapter:
    slug: str
    number: int
    title: str
    module: str
    sections: tuple[Section, ...] = field(default_factory=tuple)


@dataclass(slots=True)
class IngestReport:
    chapters: int = 0
    chunks: int = 0
    added: int = 0
    unchanged: int = 0
    deleted: int = 0
    seconds: float = 0.0
    skipped: list[str] = field(default_factory=list)  # "<file>: <reason>", files left out
    notes: list[str] = field(default_factory=list)  # e.g. a slug renamed to stay unique
