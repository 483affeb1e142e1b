"""Heading-aware chunks of a chapter, keyed by a hash of their content.

Each section becomes one or more chunks of at most `max_chars` characters. The section's
Markdown is cut into blocks (paragraphs, list items, fenced code blocks, tables); blocks are
packed greedily into chunks. Code blocks and tables are never cut: one longer than the
limit becomes a chunk of its own. Prose longer than the limit is cut at line, then
sentence, then word boundaries.

What is indexed (`search_text`) is the chunk's text after a heading context: the chapter
title and parent headings ("trail", the default), the section's own heading ("section"), or
nothing ("none"); the heading words tie a passage to its topic.

A chunk's id is a UUID made from the sha256 of everything stored with it (chapter slug,
anchor, text, the heading metadata, the heading context and the `index_key` naming how its
vectors are made), so re-ingesting unchanged content with unchanged settings finds every id
already present and writes nothing, while any edit, or another encoding, yields a new id.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from textbook.core.config import HeadingContext
from textbook.rag.content import iter_markdown_lines
from textbook.rag.types import Chapter, Passage, Section

__all__ = [
    "DEFAULT_MAX_CHARS",
    "Chunk",
    "chunk_chapter",
    "chunk_chapters",
    "chunk_id",
    "split_blocks",
]

DEFAULT_MAX_CHARS = 1200
HEADING_SEPARATOR = " > "
_TABLE_DELIMITER_RE = re.compile(r"^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$")
_SENTENCE_END_RE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9`\"'(\[*_])")


@dataclass(frozen=True, slots=True)
class Chunk:
    id: str
    module: str
    chapter: str  # chapter slug
    chapter_number: int
    chapter_title: str
    section: str
    anchor: str
    heading_path: tuple[str, ...]  # chapter title, parent headings, this section's heading
    text: str
    context: str = ""  # the headings indexed before the text (see HeadingContext)

    @property
    def search_text(self) -> str:
        """What is indexed: the heading context, then the text."""
        return f"{self.context}\n\n{self.text}" if self.context else self.text

    def payload(self) -> dict[str, object]:
        return {
            "module": self.module,
            "chapter": self.chapter,
            "chapter_number": self.chapter_number,
            "chapter_title": self.chapter_title,
            "section": self.section,
            "anchor": self.anchor,
            "heading_path": list(self.heading_path),
            "text": self.text,
        }

    def to_passage(self, score: float = 0.0) -> Passage:
        return Passage(
            chunk_id=self.id,
            module=self.module,
            chapter=self.chapter,
            chapter_title=self.chapter_title,
            section=self.section,
            anchor=self.anchor,
            text=self.text,
            score=score,
        )


def chunk_id(*, chapter: str, anchor: str, text: str, metadata: Iterable[object] = ()) -> str:
    """Deterministic UUID from the sha256 of a chunk's slug, anchor, text and metadata."""
    material = json.dumps([chapter, anchor, text, *metadata], ensure_ascii=False)
    digest = hashlib.sha256(material.encode("utf-8")).digest()
    return str(uuid.UUID(bytes=digest[:16], version=5))


# --- blocks -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Block:
    text: str
    atomic: bool  # code blocks and tables are never cut


def _paragraph_blocks(lines: list[str]) -> Iterator[Block]:
    """A run of non-blank lines: prose, a list, or (after prose) a GFM table."""
    for index in range(1, len(lines)):
        header, delimiter = lines[index - 1], lines[index]
        if "|" in header and "-" in delimiter and _TABLE_DELIMITER_RE.match(delimiter):
            if index > 1:
                yield Block("\n".join(lines[: index - 1]), atomic=False)
            yield Block("\n".join(lines[index - 1 :]), atomic=True)
            return
    yield Block("\n".join(lines), atomic=False)


def split_blocks(markdown: str) -> list[Block]:
    """Cut a section's Markdown into paragraphs, fenced code blocks and tables."""
    blocks: list[Block] = []
    paragraph: list[str] = []
    code: list[str] = []

    def end_paragraph() -> None:
        if paragraph:
            blocks.extend(_paragraph_blocks(paragraph))
            paragraph.clear()

    def end_code() -> None:
        if code:
            blocks.append(Block("\n".join(code), atomic=True))
            code.clear()

    for line in iter_markdown_lines(markdown):
        if line.in_code:
            end_paragraph()
            if line.opens_fence:  # two adjacent code blocks stay two blocks
                end_code()
            code.append(line.text)
            continue
        end_code()
        if line.text.strip():
            paragraph.append(line.text)
        else:
            end_paragraph()
    end_paragraph()
    end_code()
    return blocks


def _split_prose(text: str, max_chars: int) -> list[str]:
    """Cut prose at line, then sentence, then word boundaries into pieces <= max_chars."""
    if len(text) <= max_chars:
        return [text]
    for pattern in ("\n", _SENTENCE_END_RE):
        parts = text.split("\n") if pattern == "\n" else pattern.split(text)
        if len(parts) > 1:
            joiner = "\n" if pattern == "\n" else " "
            return _pack(
                [piece for part in parts for piece in _split_prose(part, max_chars)],
                max_chars,
                joiner,
            )
    return _pack(text.split(" "), max_chars, " ")


def _pack(parts: list[str], max_chars: int, joiner: str) -> list[str]:
    packed: list[str] = []
    current = ""
    for part in parts:
        candidate = f"{current}{joiner}{part}" if current else part
        if len(candidate) > max_chars and current:
            packed.append(current)
            candidate = part
        current = candidate
    if current:
        packed.append(current)
    return packed


def _section_texts(section: Section, max_chars: int) -> list[str]:
    pieces: list[Block] = []
    for block in split_blocks(section.text):
        if block.atomic or len(block.text) <= max_chars:
            pieces.append(block)
        else:
            pieces.extend(Block(p, atomic=False) for p in _split_prose(block.text, max_chars))
    return _pack([block.text for block in pieces], max_chars, "\n\n")


# --- chapters -----------------------------------------------------------------------------


def _context(path: tuple[str, ...], heading_context: HeadingContext) -> str:
    if heading_context == "trail":
        return HEADING_SEPARATOR.join(path)
    return path[-1] if heading_context == "section" else ""


def chunk_chapter(
    chapter: Chapter,
    max_chars: int = DEFAULT_MAX_CHARS,
    *,
    heading_context: HeadingContext = "trail",
    index_key: str = "",
) -> list[Chunk]:
    """The chapter's chunks in reading order; identical chunks in one section appear once.

    `index_key` names how the chunks' vectors are made (the sparse encoding); it only
    enters the ids, so that changing it re-indexes every chunk.
    """
    chunks: list[Chunk] = []
    seen: set[str] = set()
    trail: list[tuple[int, str]] = []  # (level, heading) of the open parent sections
    for section in chapter.sections:
        while trail and trail[-1][0] >= section.level:
            trail.pop()
        trail.append((section.level, section.title))
        path = tuple(dict.fromkeys([chapter.title, *(title for _, title in trail)]))
        context = _context(path, heading_context)
        for text in _section_texts(section, max_chars):
            identity = chunk_id(
                chapter=chapter.slug,
                anchor=section.anchor,
                text=text,
                metadata=(
                    chapter.module,
                    chapter.number,
                    chapter.title,
                    section.title,
                    *path,
                    heading_context,
                    index_key,
                ),
            )
            if identity in seen:
                continue
            seen.add(identity)
            chunks.append(
                Chunk(
                    id=identity,
                    module=chapter.module,
                    chapter=chapter.slug,
                    chapter_number=chapter.number,
                    chapter_title=chapter.title,
                    section=section.title,
                    anchor=section.anchor,
                    heading_path=path,
                    text=text,
                    context=context,
                )
            )
    return chunks


def chunk_chapters(
    chapters: Iterable[Chapter],
    max_chars: int = DEFAULT_MAX_CHARS,
    *,
    heading_context: HeadingContext = "trail",
    index_key: str = "",
) -> list[Chunk]:
    return [
        chunk
        for chapter in chapters
        for chunk in chunk_chapter(
            chapter, max_chars, heading_context=heading_context, index_key=index_key
        )
    ]
