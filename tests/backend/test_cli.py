"""The `textbook` command, run as a subprocess the way an operator runs it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from textbook import cli
from textbook.core.config import SAMPLE_CONTENT_DIR, get_settings

DOCUSAURUS_FIXTURE = Path(__file__).parent / "rag" / "fixtures" / "docusaurus"
GOOD_KEY = "9f2c7a1e5b3d8f6a0c4e2b7d9a1f3c5e"


def run(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "textbook.cli", *args],
        cwd=tmp_path,
        env=base_env(tmp_path) | (env or {}),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _first_answer(url: str, seconds: float = 60) -> httpx.Response | None:
    """The first response a starting server gives to GET url, or None within `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError:
            time.sleep(0.2)
    return None


def base_env(tmp_path: Path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    return keep | {"DATA_DIR": str(tmp_path / "var"), "LOG_LEVEL": "WARNING"}


@pytest.mark.parametrize("command", ["check", "serve", "migrate", "ingest"])
@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("", "is not set"),
        ("short", "too short"),
        ("change-me-change-me-change-me-change-me", "placeholder"),
        ("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "too little variety"),
    ],
    ids=["missing", "short", "placeholder", "repetitive"],
)
def test_weak_secret_key_stops_start_up(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    command: str,
    key: str,
    reason: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ENVIRONMENT", "staging")
    monkeypatch.setenv("SECRET_KEY", key)
    get_settings.cache_clear()
    try:
        with pytest.raises(SystemExit) as exit_:
            cli.main([command])
    finally:
        get_settings.cache_clear()
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("textbook: configuration error: SECRET_KEY")
    assert reason in err


def test_weak_secret_key_message_has_no_traceback(tmp_path: Path) -> None:
    result = run(tmp_path, "serve", env={"ENVIRONMENT": "production", "SECRET_KEY": "short"})
    assert result.returncode == 2
    assert "SECRET_KEY is too short" in result.stderr
    assert "Traceback" not in result.stderr


def test_migrate_ingest_check(tmp_path: Path) -> None:
    before = run(tmp_path, "check")
    assert before.returncode == 1
    assert "database: FAIL" in before.stdout

    migrated = run(tmp_path, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert "empty -> 0002_token_version" in migrated.stdout
    again = run(tmp_path, "migrate")
    assert "0002_token_version -> 0002_token_version" in again.stdout

    not_ingested = run(tmp_path, "check")
    assert not_ingested.returncode == 1
    assert "database: ok" in not_ingested.stdout
    assert "vector_store: FAIL" in not_ingested.stdout

    ingested = run(tmp_path, "ingest", str(SAMPLE_CONTENT_DIR))
    assert ingested.returncode == 0, ingested.stderr
    assert "ros2-foundations:" in ingested.stderr  # progress, with elapsed time
    assert "s] " in ingested.stderr
    assert "ingested" in ingested.stderr and " chunks " in ingested.stderr

    ready = run(tmp_path, "check")
    assert ready.returncode == 0, ready.stdout + ready.stderr
    assert "vector_store: ok" in ready.stdout


def test_ingest_missing_path_is_a_clean_error(tmp_path: Path) -> None:
    result = run(tmp_path, "ingest", str(tmp_path / "nowhere"))
    assert result.returncode == 1
    assert "no such file or directory" in result.stderr
    assert "Traceback" not in result.stderr


def _skipped_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("textbook: skipped ")]


def test_ingest_docusaurus_folder_reports_each_bad_file_and_ingests_the_rest(
    tmp_path: Path,
) -> None:
    docs = tmp_path / "docs"
    shutil.copytree(DOCUSAURUS_FIXTURE, docs)
    latin1 = docs / "02-simulation" / "latin1.md"
    latin1.write_bytes("# Caf\xe9\n".encode("latin-1"))
    category = docs / "01-foundations" / "advanced" / "_category_.yml"
    category.write_text("label: [unclosed\n", encoding="utf-8")
    broken = docs / "02-simulation" / "broken-front-matter.md"

    result = run(tmp_path, "ingest", str(docs))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert sorted(_skipped_lines(result.stderr)) == [
        f"textbook: skipped {category}: not valid YAML: expected ',' or ']', but got "
        "'<stream end>' (line 2) (the folder keeps its default label and position)",
        f"textbook: skipped {broken}: front matter is not valid YAML: did not find expected "
        "',' or ']' (line 3)",
        f"textbook: skipped {latin1}: not UTF-8 text (byte 5)",
    ]
    assert f"ingested {docs}: 10 chapters" in result.stderr
    assert "foundations-topics: 2 chunks" in result.stderr

    latin1.unlink()
    broken.unlink()
    category.write_text("label: Advanced topics\n", encoding="utf-8")
    fixed = run(tmp_path, "ingest", str(docs))
    assert fixed.returncode == 0, fixed.stderr
    assert _skipped_lines(fixed.stderr) == []

    (docs / "glossary.md").unlink()
    removed = run(tmp_path, "ingest", str(docs))
    assert removed.returncode == 0, removed.stderr
    assert f"glossary: no longer in {docs}, 1 chunks deleted" in removed.stderr
    assert "9 chapters" in removed.stderr and "1 deleted" in removed.stderr


def test_ingest_without_chapters_is_a_clean_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    empty = run(tmp_path, "ingest", str(tmp_path / "empty"))
    assert empty.returncode == 1
    assert f"textbook: {tmp_path / 'empty'}: no chapter to ingest" in empty.stderr
    (tmp_path / "notes.txt").write_text("not a page", encoding="utf-8")
    text = run(tmp_path, "ingest", str(tmp_path / "notes.txt"))
    assert text.returncode == 1
    assert _skipped_lines(text.stderr) == [
        f"textbook: skipped {tmp_path / 'notes.txt'}: not a .md or .mdx file"
    ]
    assert "Traceback" not in empty.stderr + text.stderr


def test_ingest_while_the_embedded_store_is_open_elsewhere_is_a_clean_error(
    tmp_path: Path,
) -> None:
    from textbook.core.config import Settings
    from textbook.rag.store import make_store

    settings = Settings(_env_file=None, data_dir=tmp_path / "var")  # type: ignore[call-arg]
    holder = make_store(settings)  # as the running service holds it
    try:
        result = run(tmp_path, "ingest", str(SAMPLE_CONTENT_DIR))
    finally:
        holder.close()
    assert result.returncode == 1
    assert result.stderr.startswith("textbook: the vector store cannot ingest: ")
    assert "one process per QDRANT_PATH" in result.stderr
    assert "Traceback" not in result.stderr
    assert run(tmp_path, "ingest", str(SAMPLE_CONTENT_DIR)).returncode == 0  # once released


def test_create_admin_from_env_and_stdin(tmp_path: Path) -> None:
    assert run(tmp_path, "migrate").returncode == 0
    created = run(
        tmp_path,
        "create-admin",
        "--email",
        "Root@Example.org",
        env={"TEXTBOOK_ADMIN_PASSWORD": "a long admin password"},
    )
    assert created.returncode == 0, created.stderr
    assert "admin root@example.org created" in created.stdout
    promoted = run(
        tmp_path, "create-admin", "--email", "root@example.org", stdin="another long password\n"
    )
    assert promoted.returncode == 0, promoted.stderr
    assert "promoted" in promoted.stdout

    from sqlalchemy import create_engine, select

    from textbook.core.security import verify_password
    from textbook.models import User

    engine = create_engine(f"sqlite:///{tmp_path / 'var' / 'textbook.db'}")
    with engine.connect() as conn:
        row = conn.execute(select(User.is_admin, User.hashed_password)).one()
    engine.dispose()
    assert row.is_admin is True
    assert verify_password("another long password", row.hashed_password)


def test_create_admin_refuses_weak_passwords_and_argv_passwords(tmp_path: Path) -> None:
    assert run(tmp_path, "migrate").returncode == 0
    weak = run(tmp_path, "create-admin", "--email", "a@example.org", stdin="short\n")
    assert weak.returncode == 1
    assert "at least 12" in weak.stderr
    argv = run(tmp_path, "create-admin", "--email", "a@example.org", "--password", "x" * 20)
    assert argv.returncode == 2  # there is no such option
    bad_email = run(
        tmp_path,
        "create-admin",
        "--email",
        "not-an-email",
        env={"TEXTBOOK_ADMIN_PASSWORD": "a long admin password"},
    )
    assert bad_email.returncode == 1
    assert "invalid e-mail" in bad_email.stderr


def test_create_admin_before_migrate_explains(tmp_path: Path) -> None:
    result = run(
        tmp_path,
        "create-admin",
        "--email",
        "a@example.org",
        env={"TEXTBOOK_ADMIN_PASSWORD": "a long admin password"},
    )
    assert result.returncode == 1
    assert "textbook migrate" in result.stderr
    assert "Traceback" not in result.stderr


def _serve(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    """`textbook serve ARGS` started in tmp_path, its output kept for the test."""
    return subprocess.Popen(
        [sys.executable, "-m", "textbook.cli", "serve", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_runs_gunicorn_with_uvicorn_workers(tmp_path: Path) -> None:
    assert run(tmp_path, "migrate").returncode == 0
    assert run(tmp_path, "ingest").returncode == 0
    port = _free_port()
    env = base_env(tmp_path) | {
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "LOG_LEVEL": "INFO",
        "ENVIRONMENT": "production",
        "SECRET_KEY": GOOD_KEY,
    }
    server = _serve(tmp_path, env)
    try:
        ready = _first_answer(f"http://127.0.0.1:{port}/api/v1/health")
        assert ready is not None, "gunicorn did not answer"
        assert ready.status_code == 200, ready.text
        answer = httpx.get(
            f"http://127.0.0.1:{port}/api/v1/search", params={"q": "topics"}, timeout=10
        )
        assert answer.status_code == 200
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=30)
    assert "uvicorn_worker" in err or "UvicornWorker" in err or "Booting worker" in err
    assert err.count("Booting worker") == 1  # embedded Qdrant: exactly one worker
    access = [line for line in err.splitlines() if '"textbook.access"' in line]
    assert [json.loads(line)["path"] for line in access].count("/api/v1/search") == 1
    # The app logs each request once; gunicorn's own access log is off.
    assert not [line for line in err.splitlines() if '"GET /api/v1/search' in line]


def test_serve_with_several_workers_counts_every_workers_requests(tmp_path: Path) -> None:
    """Several gunicorn workers: /metrics, whichever worker answers it, counts the requests
    all of them served (shared multiprocess files in a directory made for this run)."""
    port = _free_port()
    closed = _free_port()  # a Qdrant server is configured, so gunicorn runs several workers
    env = base_env(tmp_path) | {
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "3",
        "QDRANT_URL": f"http://127.0.0.1:{closed}",
        "TMPDIR": str(tmp_path),
    }
    server = _serve(tmp_path, env)
    url = f"http://127.0.0.1:{port}"

    def health_counts() -> set[float]:
        """The /health count in several scrapes, answered by several workers."""
        time.sleep(0.5)  # each worker hands its requests to the metrics in batches (0.2 s)
        line = 'textbook_http_requests_total{method="GET",route="/health",status="200"}'
        seen: set[float] = set()
        for _ in range(6):
            text = httpx.get(f"{url}/metrics", timeout=10).text
            seen.update(float(row.split()[-1]) for row in text.splitlines() if row.startswith(line))
        return seen

    try:
        ready = _first_answer(f"{url}/health")
        assert ready is not None, "gunicorn did not answer"
        before = health_counts()
        assert len(before) == 1
        for _ in range(60):  # new connections: spread over the workers
            assert httpx.get(f"{url}/health", timeout=10).status_code == 200
        assert health_counts() == {before.pop() + 60}
        metrics_dirs = list(tmp_path.glob("textbook-metrics-*"))
        assert len(metrics_dirs) == 1
        assert len(list(metrics_dirs[0].glob("*.db"))) >= 2  # files of more than one worker
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=30)
    assert not list(tmp_path.glob("textbook-metrics-*"))  # removed when the server stops


def test_serve_dev_reloads_from_the_package_sources(tmp_path: Path) -> None:
    assert run(tmp_path, "migrate").returncode == 0
    port = _free_port()
    server = _serve(
        tmp_path, base_env(tmp_path) | {"LOG_LEVEL": "INFO"}, "--dev", "--bind", f"127.0.0.1:{port}"
    )
    try:
        health = _first_answer(f"http://127.0.0.1:{port}/health")
        assert health is not None, "serve --dev did not answer"
        assert health.status_code == 200
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=30)
    package = str(Path(cli.__file__).resolve().parent)
    watching = [line for line in err.splitlines() if "Will watch for changes" in line]
    assert watching, err[-2000:]
    assert package in watching[0]
    assert str(tmp_path) not in watching[0]
    assert sum('"textbook.access"' in line and '"/health"' in line for line in err.splitlines())
