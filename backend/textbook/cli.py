"""The `textbook` command: serve, migrate, ingest, create-admin, check (the server side);
login, logout, ask, search (a client of any deployment, textbook/client/cli.py)."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from textbook.client.cli import add_commands as add_client_commands
from textbook.core.config import Settings, get_settings

ADMIN_PASSWORD_ENV = "TEXTBOOK_ADMIN_PASSWORD"  # noqa: S105 - a variable name, not a secret
MIN_ADMIN_PASSWORD = 12


class CommandError(Exception):
    """A failure explained in one line; exit status 1."""


def _err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def load_settings() -> Settings:
    """Settings, or a one-line message naming the bad variable and exit status 2."""
    try:
        return get_settings()
    except ValidationError as exc:
        for error in exc.errors():
            field = ".".join(str(p) for p in error["loc"]).upper()
            message = str(error["msg"]).removeprefix("Value error, ")
            _err(f"textbook: configuration error: {field + ': ' if field else ''}{message}")
        raise SystemExit(2) from None


# --- serve ---------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    settings = load_settings()
    if args.dev:
        import uvicorn

        host, _, port = (args.bind or "127.0.0.1:8000").rpartition(":")
        uvicorn.run(
            "textbook.main:app",
            host=host or "127.0.0.1",
            port=int(port),
            reload=True,
            # The package's own sources, not the working directory (a checkout's .venv and
            # .cache would be scanned too).
            reload_dirs=[str(Path(__file__).resolve().parent)],
            access_log=False,
            proxy_headers=True,
            forwarded_allow_ips=",".join(settings.trusted_proxies),
        )
        return 0
    argv = [sys.executable, "-m", "gunicorn", "--config", "python:textbook.gunicorn_conf"]
    if args.bind:
        argv += ["--bind", args.bind]
    argv.append("textbook.main:app")
    sys.stdout.flush()
    os.execv(sys.executable, argv)  # noqa: S606 - our own interpreter, fixed arguments


# --- migrate -------------------------------------------------------------------------


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = load_settings()
    from textbook.core.db import make_engine
    from textbook.core.migrate import current_revision, downgrade, head_revision, upgrade

    engine = make_engine(settings)
    try:
        with engine.connect() as conn:
            before = current_revision(conn)
        if args.revision.startswith("-") or args.downgrade:
            downgrade(engine, args.revision)
        else:
            upgrade(engine, args.revision)
        with engine.connect() as conn:
            after = current_revision(conn)
    finally:
        engine.dispose()
    print(f"database schema: {before or 'empty'} -> {after} (head {head_revision()})")
    return 0


# --- ingest --------------------------------------------------------------------------


def cmd_ingest(args: argparse.Namespace) -> int:
    """Exit 0 when every file was ingested, 1 when a file was skipped or nothing could be."""
    settings = load_settings()
    from textbook.rag.store import StoreError, make_store

    path = Path(args.path) if args.path else settings.content_path
    if not path.exists():
        raise CommandError(f"textbook: {path}: no such file or directory")
    started = time.perf_counter()

    def progress(message: str) -> None:
        _err(f"[{time.perf_counter() - started:7.2f}s] {message}")

    try:
        store = make_store(settings)
        try:
            report = store.ingest(path, progress=progress)
        finally:
            store.close()
    except StoreError as exc:
        raise CommandError(f"textbook: the vector store cannot ingest: {exc}") from None
    for note in report.notes:
        _err(f"textbook: note: {note}")
    for line in report.skipped:
        _err(f"textbook: skipped {line}")
    if not report.chapters:
        raise CommandError(f"textbook: {path}: no chapter to ingest (.md or .mdx files)")
    _err(
        f"ingested {path}: {report.chapters} chapters, {report.chunks} chunks "
        f"({report.added} added, {report.unchanged} unchanged, {report.deleted} deleted) "
        f"in {report.seconds:.2f}s"
    )
    if report.skipped:
        _err(
            f"textbook: {len(report.skipped)} file(s) skipped (above); chapters no longer "
            f"in {path} are kept until every file reads"
        )
        return 1
    return 0


# --- create-admin --------------------------------------------------------------------


def read_admin_password() -> str:
    """From TEXTBOOK_ADMIN_PASSWORD, else piped stdin, else an interactive prompt."""
    password = os.environ.get(ADMIN_PASSWORD_ENV)
    if password is None:
        if sys.stdin.isatty():
            password = getpass.getpass("Password: ")
            if password != getpass.getpass("Repeat password: "):
                raise CommandError("textbook: the passwords differ")
        else:
            password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < MIN_ADMIN_PASSWORD:
        raise CommandError(
            f"textbook: the admin password needs at least {MIN_ADMIN_PASSWORD} characters"
        )
    return password


def cmd_create_admin(args: argparse.Namespace) -> int:
    from email_validator import EmailNotValidError, validate_email
    from sqlalchemy import func, select

    from textbook.core.db import make_engine, make_sessionmaker, session_scope
    from textbook.core.security import hash_password
    from textbook.models import User

    settings = load_settings()
    try:
        email = validate_email(args.email, check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise CommandError(f"textbook: invalid e-mail address: {exc}") from None
    password = read_admin_password()
    engine = make_engine(settings)
    try:
        with session_scope(make_sessionmaker(engine)) as db:
            user = db.scalar(select(User).where(func.lower(User.email) == email))
            if user is None:
                db.add(
                    User(
                        email=email,
                        hashed_password=hash_password(password),
                        is_admin=True,
                        is_active=True,
                    )
                )
                action = "created"
            else:
                user.hashed_password = hash_password(password)
                user.is_admin = True
                user.is_active = True
                action = "promoted to admin (password reset)"
    except Exception as exc:
        raise CommandError(
            f"textbook: could not save the admin: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:200]} (did you run `textbook migrate`?)"
        ) from None
    finally:
        engine.dispose()
    print(f"admin {email} {action}")
    return 0


# --- check ---------------------------------------------------------------------------


def cmd_check(_args: argparse.Namespace) -> int:
    settings = load_settings()
    from textbook.core.db import make_engine
    from textbook.core.readiness import check_database
    from textbook.rag.store import check_store, open_store

    print(
        f"configuration: ok (environment {settings.environment}, "
        f"llm {settings.chat_provider}, database {settings.database_url.split(':')[0]})"
    )
    engine = make_engine(settings)
    store = open_store(settings)
    try:
        components = {"database": check_database(engine), "vector_store": check_store(store)}
    finally:
        if store is not None:
            store.close()
        engine.dispose()
    for name, component in components.items():
        cause = f" ({component.cause})" if component.cause else ""
        print(f"{name}: {'ok' if component.ok else 'FAIL'} - {component.detail}{cause}")
    return 0 if all(c.ok for c in components.values()) else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="textbook", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the API (gunicorn; --dev: uvicorn with reload)")
    serve.add_argument("--dev", action="store_true", help="uvicorn with auto-reload")
    serve.add_argument("--bind", help="address (default GUNICORN_BIND or 127.0.0.1:8000)")
    serve.set_defaults(func=cmd_serve)

    migrate = sub.add_parser("migrate", help="upgrade the database schema (alembic)")
    migrate.add_argument("revision", nargs="?", default="head")
    migrate.add_argument("--downgrade", action="store_true", help="downgrade to REVISION")
    migrate.set_defaults(func=cmd_migrate)

    ingest = sub.add_parser("ingest", help="index the textbook into the vector store")
    ingest.add_argument("path", nargs="?", help="chapters directory (default CONTENT_PATH)")
    ingest.set_defaults(func=cmd_ingest)

    admin = sub.add_parser(
        "create-admin",
        help=f"create or promote an admin; password from {ADMIN_PASSWORD_ENV}, stdin or prompt",
    )
    admin.add_argument("--email", required=True)
    admin.set_defaults(func=cmd_create_admin)

    check = sub.add_parser("check", help="readiness of database and vector store; exit 0/1")
    check.set_defaults(func=cmd_check)

    add_client_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        status: int = args.func(args)
    except CommandError as exc:
        _err(str(exc))
        return 1
    except KeyboardInterrupt:
        return 130
    return status


if __name__ == "__main__":
    sys.exit(main())
