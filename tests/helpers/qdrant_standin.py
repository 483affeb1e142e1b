"""The lab's Qdrant stand-in (labstandins/qdrant) as a loopback process for tests, started the
way systemd starts it (``qdrant --config-path``). On sys.path through pytest's `pythonpath`."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

STANDIN = Path(__file__).resolve().parents[2] / "labstandins" / "qdrant" / "qdrant_labstandin.py"
READY_SECONDS = 30


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start(config: dict[str, object], config_path: Path) -> subprocess.Popen[bytes]:
    """The stand-in serving `config` (written to `config_path`), not yet ready."""
    config_path.write_text(yaml.safe_dump(config))
    return subprocess.Popen(
        [sys.executable, str(STANDIN), "--config-path", str(config_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    """Until /readyz answers 200; the test fails with the output if the process exits first."""
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read().decode() if proc.stdout else ""
            pytest.fail(f"qdrant stand-in exited with {proc.returncode}: {out}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"qdrant stand-in not ready in {READY_SECONDS} s")
