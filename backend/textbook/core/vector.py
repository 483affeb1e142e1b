"""Opening the vector store without letting a failure take the process down."""

from __future__ import annotations

import logging

from textbook.api.deps import Store
from textbook.core.config import Settings

log = logging.getLogger("textbook")


def open_store(settings: Settings) -> Store | None:
    """The vector store, or None (readiness then reports why) when it cannot be opened."""
    from textbook.rag.store import VectorStore

    try:
        return VectorStore(settings)
    except Exception:
        log.exception("vector store could not be opened")
        return None
