"""The chapters on disk, parsed once and re-read only when a file changes."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from textbook.rag.content import book_files, find_chapter, find_section, load_book
from textbook.rag.types import Chapter, Section

log = logging.getLogger(__name__)


def section_url(chapter: str, anchor: str) -> str:
    """Where the textbook site shows a section."""
    return f"/chapters/{chapter}#{anchor}" if anchor else f"/chapters/{chapter}"


class ChapterLibrary:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._signature: tuple[tuple[str, int, int], ...] | None = None
        self._chapters: list[Chapter] = []

    def _current_signature(self) -> tuple[tuple[str, int, int], ...]:
        signature = []
        for file in book_files(self.path):  # pages (.md, .mdx) and _category_ files
            try:
                stat = file.stat()
            except OSError:  # removed meanwhile, or a dangling link: load_book reports it
                stat = None
            signature.append(
                (str(file), stat.st_mtime_ns if stat else -1, stat.st_size if stat else -1)
            )
        return tuple(signature)

    def chapters(self) -> list[Chapter]:
        signature = self._current_signature()
        with self._lock:
            if signature != self._signature:
                book = load_book(self.path) if signature else None
                for line in book.skipped if book else ():
                    log.warning("textbook content: skipped %s", line)
                self._chapters = book.chapters if book else []
                self._signature = signature
            return self._chapters

    def chapter(self, slug: str) -> Chapter | None:
        return find_chapter(self.chapters(), slug)

    def section(self, slug: str, anchor: str) -> tuple[Chapter, Section] | None:
        return find_section(self.chapters(), slug, anchor)

    def invalidate(self) -> None:
        with self._lock:
            self._signature = None
