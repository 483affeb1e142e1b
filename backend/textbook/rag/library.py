"""The chapters on disk, parsed once and re-read only when a file changes."""

from __future__ import annotations

import threading
from pathlib import Path

from textbook.rag.content import find_chapter, find_section, load_chapters
from textbook.rag.types import Chapter, Section


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
        if not self.path.exists():
            return ()
        files = [self.path] if self.path.is_file() else sorted(self.path.rglob("*.md"))
        return tuple((f.name, f.stat().st_mtime_ns, f.stat().st_size) for f in files)

    def chapters(self) -> list[Chapter]:
        signature = self._current_signature()
        with self._lock:
            if signature != self._signature:
                self._chapters = load_chapters(self.path) if signature else []
                self._signature = signature
            return self._chapters

    def chapter(self, slug: str) -> Chapter | None:
        return find_chapter(self.chapters(), slug)

    def section(self, slug: str, anchor: str) -> tuple[Chapter, Section] | None:
        return find_section(self.chapters(), slug, anchor)

    def invalidate(self) -> None:
        with self._lock:
            self._signature = None
