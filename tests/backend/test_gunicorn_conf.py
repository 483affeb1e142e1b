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
