"""gunicorn settings: workers, worker class, timeouts, no access log."""

from __future__ import annotations

import importlib

import pytest
from gunicorn.config import Config

from textbook.core import config


@pytest.fixture
def conf(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    def load(**env: str):  # type: ignore[no-untyped-def]
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        config.get_settings.cache_clear()
        import textbook.gunicorn_conf as module

        return importlib.reload(module)

    yield load
    config.get_settings.cache_clear()


def test_defaults(conf) -> None:  # type: ignore[no-untyped-def]
    module = conf()
    assert module.bind == ["127.0.0.1:8000"]
    assert module.worker_class == "uvicorn_worker.UvicornWorker"
    assert module.workers == 1  # embedded Qdrant: one process per storage path
    assert module.accesslog is None
    # One worker is never recycled: nothing would serve while it restarts.
    assert (module.max_requests, module.max_requests_jitter) == (0, 0)
    assert module.graceful_timeout > 0 and module.timeout > 0 and module.keepalive > 0
    assert module.forwarded_allow_ips == "127.0.0.1"


def test_bind_and_proxies_from_environment(conf) -> None:  # type: ignore[no-untyped-def]
    module = conf(
        GUNICORN_BIND="unix:/run/textbook/gunicorn.sock", TRUSTED_PROXIES="10.0.0.2, unix:"
    )
    assert module.bind == ["unix:/run/textbook/gunicorn.sock"]
    # gunicorn validates the list and refuses "unix:"; the app trusts unix peers itself.
    assert module.forwarded_allow_ips == "10.0.0.2"
    config = Config()
    config.set("forwarded_allow_ips", module.forwarded_allow_ips)
    assert config.forwarded_allow_ips == ["10.0.0.2"]


def test_worker_count(conf) -> None:  # type: ignore[no-untyped-def]
    module = conf(QDRANT_URL="http://10.0.0.5:6333")
    assert module.worker_count({}, cores=2, embedded_qdrant=False) == 2
    assert module.worker_count({}, cores=1, embedded_qdrant=False) == 1
    assert module.worker_count({}, cores=16, embedded_qdrant=False) == 8
    assert module.worker_count({"WEB_CONCURRENCY": "3"}, cores=2, embedded_qdrant=False) == 3
    assert module.worker_count({"WEB_CONCURRENCY": "junk"}, cores=4, embedded_qdrant=False) == 4
    assert module.worker_count({"WEB_CONCURRENCY": "4"}, cores=2, embedded_qdrant=True) == 1
    assert module.workers == min(__import__("os").cpu_count(), 8)


def test_workers_are_recycled_with_jitter_only_when_another_serves(conf) -> None:  # type: ignore[no-untyped-def]
    module = conf(QDRANT_URL="http://10.0.0.5:6333", WEB_CONCURRENCY="2")
    assert module.workers == 2
    assert (module.max_requests, module.max_requests_jitter) == (2000, 200)
    # gunicorn takes them as given
    config = Config()
    config.set("max_requests", module.max_requests)
    config.set("max_requests_jitter", module.max_requests_jitter)
    assert (config.max_requests, config.max_requests_jitter) == (2000, 200)
    assert module.recycling(2, {"GUNICORN_MAX_REQUESTS": "500"}) == (500, 50)
    assert module.recycling(3, {"GUNICORN_MAX_REQUESTS": "0"}) == (0, 0)
    assert module.recycling(1, {"GUNICORN_MAX_REQUESTS": "500"}) == (0, 0)
    assert module.recycling(1, {}) == (0, 0)
    single = conf(
        QDRANT_URL="http://10.0.0.5:6333", WEB_CONCURRENCY="1", GUNICORN_MAX_REQUESTS="50"
    )
    assert (single.workers, single.max_requests, single.max_requests_jitter) == (1, 0, 0)


def test_systemd_hears_ready_from_a_worker_whose_app_has_started(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Type=notify units (role backend) count a restart done at READY=1: it must come from a
    worker once its app's startup is over (notify_ready), not from the master that has only
    bound its socket (gunicorn's own "READY=1\nSTATUS=Gunicorn arbiter booted")."""
    import os
    import socket
    import subprocess
    import sys

    import textbook

    started = tmp_path / "started"
    (tmp_path / "slowapp.py").write_text(
        "import pathlib, time\n"
        "from textbook.core.readiness import notify_ready\n"
        "async def app(scope, receive, send):\n"
        "    while True:\n"
        "        message = await receive()\n"
        "        if message['type'] == 'lifespan.startup':\n"
        "            time.sleep(1.5)\n"
        f"            pathlib.Path({str(started)!r}).touch()\n"
        "            notify_ready()\n"
        "            await send({'type': 'lifespan.startup.complete'})\n"
        "        elif message['type'] == 'lifespan.shutdown':\n"
        "            await send({'type': 'lifespan.shutdown.complete'})\n"
        "            return\n"
    )
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(30)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    package_root = os.path.dirname(os.path.dirname(textbook.__file__))
    env = {
        **os.environ,
        "NOTIFY_SOCKET": str(tmp_path / "notify"),
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "PYTHONPATH": os.pathsep.join([str(tmp_path), package_root]),
    }
    config = "python:textbook.gunicorn_conf"
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--config", config, "slowapp:app"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        message = notify.recv(1024)
        app_had_started = started.exists()
    finally:
        server.terminate()
        server.wait(timeout=30)
        notify.close()
    assert message == f"READY=1\nMAINPID={server.pid}".encode()
    assert app_had_started


def test_a_re_exec_under_socket_activation_hands_the_socket_to_a_new_master_systemd_hears_of(
    tmp_path,  # type: ignore[no-untyped-def]
) -> None:
    """Role backend switches releases with USR2: gunicorn starts a new master (through the
    launcher script the unit runs) beside the old one, on the socket systemd passed (fd 3,
    LISTEN_FDS). The new master gets that socket (pre_exec puts it back at fd 3), its worker's
    READY names it (MAINPID=) so systemd follows it, it is the launcher itself (`gunicorn` in
    ps, not `python <launcher>`), and it serves once the old master has stopped."""
    import contextlib
    import http.client
    import os
    import signal
    import socket
    import subprocess
    import sys

    import textbook

    (tmp_path / "app.py").write_text(
        "import os\n"
        "from textbook.core.readiness import notify_ready\n"
        "async def app(scope, receive, send):\n"
        "    if scope['type'] == 'http':\n"
        "        body = str(os.getppid()).encode()\n"
        "        await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "        await send({'type': 'http.response.body', 'body': body})\n"
        "        return\n"
        "    while True:\n"
        "        message = await receive()\n"
        "        if message['type'] == 'lifespan.startup':\n"
        "            notify_ready()\n"
        "            await send({'type': 'lifespan.startup.complete'})\n"
        "        elif message['type'] == 'lifespan.shutdown':\n"
        "            await send({'type': 'lifespan.shutdown.complete'})\n"
        "            return\n"
    )
    launcher = tmp_path / "bin" / "gunicorn"
    launcher.parent.mkdir()
    launcher.write_text(
        f"#!{sys.executable}\nimport sys\nfrom gunicorn.app.wsgiapp import run\nsys.exit(run())\n"
    )
    launcher.chmod(0o755)
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(20)
    listening = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listening.bind(str(tmp_path / "app.sock"))
    listening.listen(16)
    package_root = os.path.dirname(os.path.dirname(textbook.__file__))
    env = {
        **os.environ,
        "NOTIFY_SOCKET": str(tmp_path / "notify"),
        "PYTHONPATH": os.pathsep.join([str(tmp_path), package_root]),
    }

    def get() -> str:
        """A request on the socket; the answer is the serving worker's master."""
        connection = http.client.HTTPConnection("localhost", timeout=10)
        connection.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        connection.sock.connect(str(tmp_path / "app.sock"))
        connection.request("GET", "/")
        return connection.getresponse().read().decode()

    # As systemd starts it: the socket at fd 3, LISTEN_FDS=1, LISTEN_PID the server's own.
    as_systemd = (
        "import os, sys; os.dup2(int(sys.argv[1]), 3); "
        "os.environ.update(LISTEN_FDS='1', LISTEN_PID=str(os.getpid())); "
        "os.execv(sys.argv[2], sys.argv[2:])"
    )
    serve = ["--config", "python:textbook.gunicorn_conf", "app:app"]
    old = subprocess.Popen(
        [sys.executable, "-c", as_systemd, str(listening.fileno()), str(launcher), *serve],
        env=env,
        pass_fds=[listening.fileno()],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    listening.close()
    new = 0
    try:
        assert notify.recv(1024) == f"READY=1\nMAINPID={old.pid}".encode()
        assert get() == str(old.pid)
        old.send_signal(signal.SIGUSR2)
        ready = notify.recv(1024).decode()
        assert ready.startswith("READY=1\nMAINPID="), ready
        new = int(ready.rpartition("=")[2])
        assert new != old.pid
        with open(f"/proc/{new}/stat") as stat:
            assert int(stat.read().rpartition(")")[2].split()[1]) == old.pid  # its parent
        with open(f"/proc/{new}/comm") as comm:
            assert comm.read().strip() == "gunicorn"
        old.terminate()  # the old master stops; the new one serves on the same socket
        old.wait(timeout=30)
        assert get() == str(new)
    finally:
        if old.poll() is None:
            old.terminate()
            old.wait(timeout=30)
        if new:
            with contextlib.suppress(ProcessLookupError):
                os.kill(new, signal.SIGTERM)
        notify.close()
