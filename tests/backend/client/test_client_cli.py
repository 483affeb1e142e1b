"""`textbook login/ask/search/logout` run as a user runs them (a subprocess) against a live
server: streamed answers, citations, tokens kept 0600, one-line errors."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from apitest import PASSWORD

from conftest import Live, ServeFactory


@pytest.fixture(scope="module")
def live(live_sqlite: Live) -> Live:
    return live_sqlite


QUESTION = "What does a QoS reliability policy control?"


def env_for(home: Path, **extra: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "TMPDIR")}
    return keep | {"HOME": str(home), "XDG_CONFIG_HOME": str(home / "config")} | extra


def textbook(
    home: Path, *args: str, stdin: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "textbook.cli", *args],
        env=env_for(home, **env),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def credentials(home: Path) -> Path:
    return home / "config" / "textbook" / "credentials.json"


def one_line_error(result: subprocess.CompletedProcess[str], expected: str) -> None:
    assert result.returncode == 1, result
    assert result.stderr.startswith("textbook: ") and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert expected in result.stderr, result.stderr


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def logged_in(live: Live, home: Path) -> Path:
    email, password = live.new_user()
    result = textbook(home, "login", live.url, "--email", email, stdin=password + "\n")
    assert result.returncode == 0, result.stderr
    return home


def test_login_registers_and_keeps_the_token_in_a_0600_file(live: Live, home: Path) -> None:
    result = textbook(
        home,
        "login",
        live.url,
        "--email",
        "cli-user@example.org",
        "--register",
        TEXTBOOK_PASSWORD=PASSWORD,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"logged in to {live.url} as cli-user@example.org")
    path = credentials(home)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    saved = json.loads(path.read_text())
    assert saved["default"] == live.url
    server = saved["servers"][f"{live.url}/api/v1"]
    assert server["email"] == "cli-user@example.org" and server["access_token"]
    assert PASSWORD not in path.read_text()
    again = textbook(
        home, "login", live.url, "--email", "cli-user@example.org", "--register", stdin=PASSWORD
    )
    one_line_error(again, "already registered (HTTP 409, request id ")


def test_ask_prints_the_answer_as_it_is_written_then_the_sources(
    serve: ServeFactory, home: Path
) -> None:
    live = serve()
    email, password = live.new_user()
    assert textbook(home, "login", live.url, "--email", email, stdin=password).returncode == 0
    live.llm.behaviour.chunk_delay = 0.4  # five pieces, 2 s in all
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "textbook.cli", "ask", QUESTION],
        env=env_for(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    first = process.stdout.read1(1024)  # what has arrived so far, as soon as anything has
    first_at = time.monotonic() - started
    rest, errors = process.communicate(timeout=60)
    ended_at = time.monotonic() - started
    assert process.returncode == 0, errors
    output = (first + rest).decode()
    assert first.decode() == "Nodes"  # the first piece alone: not buffered to the end
    assert ended_at - first_at >= 1.2
    answer, sources = output.split("\n\nSources:\n")
    assert answer == live.llm.behaviour.reply
    assert sources.startswith("  [1] ") and "/chapters/" in sources
    assert "continue with --conversation " in errors.decode()


def test_ask_without_streaming_and_with_site_links(live: Live, logged_in: Path) -> None:
    result = textbook(
        logged_in, "ask", "--no-stream", "--site", "https://book.example.org/", QUESTION
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(live.llm.behaviour.reply + "\n\nSources:\n  [1] ")
    assert "https://book.example.org/chapters/" in result.stdout


def test_ask_about_selected_text_from_a_file(live: Live, logged_in: Path, tmp_path: Path) -> None:
    selection = tmp_path / "selection.txt"
    selection.write_text("Lifecycle nodes start unconfigured, then become inactive.\n")
    result = textbook(logged_in, "ask", "--selected-text", str(selection), "Which state is first?")
    assert result.returncode == 0, result.stderr
    assert "Sources:" not in result.stdout  # the selection, not the textbook, is the source
    assert "Lifecycle nodes start unconfigured" in live.llm.prompt_text()
    missing = textbook(logged_in, "ask", "--selected-text", str(tmp_path / "nope.txt"), "Why?")
    one_line_error(missing, "nope.txt: No such file or directory")
    binary = tmp_path / "binary.bin"
    binary.write_bytes(b"\xff\xfe\x00 not text")
    one_line_error(
        textbook(logged_in, "ask", "--selected-text", str(binary), "Why?"), "not UTF-8 text"
    )


def test_ask_continues_a_conversation(live: Live, logged_in: Path) -> None:
    first = textbook(logged_in, "ask", QUESTION)
    conversation = first.stderr.split("--conversation ")[1].split(")")[0]
    second = textbook(logged_in, "ask", "--conversation", conversation, "And durability?")
    assert second.returncode == 0, second.stderr
    assert f"conversation {conversation}:" in second.stderr
    assert "And durability?" not in live.llm.prompt_text(0)
    assert QUESTION in live.llm.prompt_text()  # the earlier turn is in the new prompt


def test_search_lists_passages_with_links_and_as_json(live: Live, home: Path) -> None:
    result = textbook(home, "search", "--url", live.url, "quality of service", "--limit", "3")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("1. ") and "/chapters/" in lines[0]
    assert sum(line[:3] in ("1. ", "2. ", "3. ") for line in lines) == 3
    raw = textbook(home, "search", "--json", "quality of service", TEXTBOOK_URL=live.url)
    assert len(json.loads(raw.stdout)["results"]) == 5


def test_the_token_is_refreshed_and_kept(live: Live, logged_in: Path) -> None:
    path = credentials(logged_in)
    saved = json.loads(path.read_text())
    entry = saved["servers"][f"{live.url}/api/v1"]
    old = entry["access_token"]
    entry["expires_at"] = time.time() - 1  # expired: refreshed before the call
    path.write_text(json.dumps(saved))
    assert textbook(logged_in, "ask", "--no-stream", QUESTION).returncode == 0
    assert json.loads(path.read_text())["servers"][f"{live.url}/api/v1"]["access_token"] != old
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_logout_revokes_and_forgets_the_token(live: Live, logged_in: Path) -> None:
    result = textbook(logged_in, "logout")
    assert result.returncode == 0, result.stderr
    assert (
        "access_token"
        not in json.loads(credentials(logged_in).read_text())["servers"][f"{live.url}/api/v1"]
    )
    one_line_error(
        textbook(logged_in, "ask", QUESTION), f"not logged in to {live.url}; run: textbook login"
    )


def test_bad_input_is_one_line_and_a_nonzero_exit(live: Live, logged_in: Path) -> None:
    one_line_error(
        textbook(logged_in, "ask", "x" * 2001),
        "question: String should have at most 2000 characters (HTTP 422, request id ",
    )
    one_line_error(
        textbook(logged_in, "search", "--url", "ftp://example.org", "topics"), "not an http"
    )
    one_line_error(
        textbook(logged_in, "search", "--ca-file", "/nonexistent.pem", "topics"),
        "--ca-file /nonexistent.pem: no such file",
    )
    one_line_error(
        textbook(logged_in, "ask", "--conversation", "42", QUESTION), "not a conversation id"
    )
    one_line_error(
        textbook(logged_in, "ask", "--conversation", "7b1e0a3c-5f41-4e8e-9a43-2d7c1f0b9e11", "Hi"),
        "Chat session not found (HTTP 404",
    )
    one_line_error(textbook(logged_in, "login", live.url), "--email is required")
    credentials(logged_in).write_text("{not json")
    one_line_error(textbook(logged_in, "search", "topics"), "remove it and log in again")


def test_nothing_listening_is_one_line(home: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = textbook(home, "search", "--url", f"http://127.0.0.1:{port}", "topics")
    one_line_error(result, f"cannot reach http://127.0.0.1:{port}/api/v1/search")
