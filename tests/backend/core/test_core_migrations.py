"""Alembic: upgrade -> downgrade -> upgrade, and the migration matches the models."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from textbook.core.migrate import current_revision, downgrade, head_revision, upgrade
from textbook.models import Base

TABLES = {"users", "chat_sessions", "chat_messages"}


def _round_trip(url: str) -> None:
    engine = create_engine(url)
    try:
        upgrade(engine)
        assert set(inspect(engine).get_table_names()) >= TABLES
        with engine.connect() as conn:
            assert current_revision(conn) == head_revision()
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == [], f"models and migrations disagree: {diff}"
        downgrade(engine, "base")
        assert not TABLES & set(inspect(engine).get_table_names())
        with engine.connect() as conn:
            assert current_revision(conn) is None
        upgrade(engine)
        with engine.connect() as conn:
            assert current_revision(conn) == head_revision()
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_round_trip_on_postgresql(scratch_postgres_db: Callable[[], str]) -> None:
    _round_trip(scratch_postgres_db())


def test_round_trip_on_sqlite(tmp_path: Path) -> None:
    _round_trip(f"sqlite:///{tmp_path / 'migrations.db'}")


def test_migrations_ship_inside_the_package() -> None:
    import textbook

    versions = Path(textbook.__file__).parent / "migrations" / "versions"
    assert any(versions.glob("0001_*.py"))
    assert head_revision() == "0002_token_version"
