"""READY=1 to systemd once the app has started (Type=notify units of role backend)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from textbook.core.readiness import MASTER_PID_ENV, NOTIFY_SOCKET_ENV


@pytest.mark.parametrize(
    ("master", "message"),
    [(None, b"READY=1"), ("4242", b"READY=1\nMAINPID=4242")],
    ids=["alone", "under-gunicorn-naming-the-master"],
)
def test_the_app_tells_systemd_it_is_ready_once_its_startup_is_over(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    make_client: Callable[..., Any],
    master: str | None,
    message: bytes,
) -> None:
    """Under gunicorn (gunicorn_conf sets the master's pid) READY names the master as the main
    process, so that systemd follows a re-executed master (role backend's release switch)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(tmp_path / "notify"))
        notify.settimeout(0)
        monkeypatch.setenv(NOTIFY_SOCKET_ENV, str(tmp_path / "notify"))
        if master is None:
            monkeypatch.delenv(MASTER_PID_ENV, raising=False)
        else:
            monkeypatch.setenv(MASTER_PID_ENV, master)
        client = make_client()  # runs the lifespan's startup
        assert notify.recv(64) == message
        assert client.app.state.readiness is not None  # sent after the startup built it


def test_without_systemd_nothing_is_sent_and_a_dead_socket_is_not_fatal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_client: Callable[..., Any]
) -> None:
    monkeypatch.setenv(NOTIFY_SOCKET_ENV, str(tmp_path / "nobody-listens"))
    assert make_client().get("/health").status_code == 200
