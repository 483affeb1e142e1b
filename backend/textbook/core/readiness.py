"""Readiness: the database answers at the migration head, the vector store has its
collection. Shared by GET /api/v1/health and `textbook check`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import Engine, text

from textbook.core.migrate import current_revision, head_revision


class ReadyCheckable(Protocol):
    def ready(self) -> tuple[bool, str]: ...


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


def check_vector_store(store: ReadyCheckable | None) -> Component:
    if store is None:
        return Component(False, "vector store not opened")
    try:
        ok, detail = store.ready()
    except Exception as exc:
        return Component(False, f"unreachable: {type(exc).__name__}: {str(exc)[:200]}")
    return Component(ok, detail)


def check_all(engine: Engine, store: ReadyCheckable | None) -> dict[str, Component]:
    return {"database": check_database(engine), "vector_store": check_vector_store(store)}
