"""Database engine and sessions (SQLAlchemy 2). SQLite is the embedded default."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from textbook.core.config import Settings


def make_engine(settings: Settings) -> Engine:
    """One engine per process; pool_pre_ping drops connections the server closed."""
    url = make_url(settings.database_url)
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        # Request handlers run in a thread pool; SQLite must allow that.
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    else:
        kwargs.update(pool_size=5, max_overflow=10, pool_recycle=1800)
    engine = create_engine(url, **kwargs)
    if url.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    # On both databases, so SQLite (development) refuses what PostgreSQL cannot store.
    event.listen(engine, "before_cursor_execute", _refuse_unstorable_text)
    return engine


class UnstorableTextError(ValueError):
    """A text parameter the database cannot store (NUL, lone surrogates); the API answers 422."""

    message = "Text must not contain NUL (U+0000) characters or unpaired surrogates"

    def __init__(self) -> None:
        super().__init__(self.message)


def _storable(value: object) -> bool:
    """Whether every string in `value` (a parameter, or a row or rows of them) can be stored."""
    if isinstance(value, str):
        if "\x00" in value:
            return False
        if value.isascii():
            return True
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, Mapping):
        return all(_storable(item) for item in value.values())
    if isinstance(value, (list, tuple)):
        return all(_storable(item) for item in value)
    return True


def _refuse_unstorable_text(
    _conn: Any, _cursor: Any, _statement: str, parameters: Any, _context: Any, _many: bool
) -> None:
    # PostgreSQL text cannot hold NUL (psycopg2 raises a bare ValueError: a 500 otherwise).
    if not _storable(parameters):
        raise UnstorableTextError


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A unit of work: commit on success, roll back on any error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
