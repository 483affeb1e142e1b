"""Readiness: each component's state as GET /api/v1/health and `textbook check` report it.
The database's check is here; the vector store's is textbook.rag.store.check_store."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, text

from textbook.core.migrate import current_revision, head_revision


@dataclass(frozen=True)
class Component:
    ok: bool
    detail: str


def check_database(engine: Engine) -> Component:
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
            current = current_revision(connection)
    except Exception as exc:  # any driver error means "not ready"
        return Component(False, f"unreachable: {type(exc).__name__}: {str(exc)[:200]}")
    head = head_revision()
    if current != head:
        return Component(
            False, f"schema at revision {current}, head is {head}; run `textbook migrate`"
        )
    return Component(True, f"reachable, schema at head ({head})")
