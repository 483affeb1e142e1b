"""Request metrics taken in batches equal what one observe() per request would record."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from textbook.core.metrics import LATENCY_BUCKETS, Metrics

# Latencies on and around every bucket bound, and far beyond the last one.
rng = random.Random(7)
SECONDS = [b for b in LATENCY_BUCKETS] + [b * (1 + 1e-9) for b in LATENCY_BUCKETS]
SECONDS += [rng.uniform(0, 40) for _ in range(200)] + [0.0, 1e6]
REQUESTS = [
    (
        rng.choice(["GET", "POST"]),
        rng.choice(["/health", "/api/v1/chat"]),
        rng.choice([200, 404]),
        s,
    )
    for s in SECONDS
]


def one_by_one() -> bytes:
    """The same metrics, the plain prometheus_client way."""
    registry = CollectorRegistry()
    requests = Counter(
        "textbook_http_requests",
        "HTTP requests by method, route template and status code.",
        ["method", "route", "status"],
        registry=registry,
    )
    latency = Histogram(
        "textbook_http_request_duration_seconds",
        "HTTP request latency by method and route template.",
        ["method", "route"],
        buckets=LATENCY_BUCKETS,
        registry=registry,
    )
    for method, route, status, seconds in REQUESTS:
        requests.labels(method, route, str(status)).inc()
        latency.labels(method, route).observe(seconds)
    return generate_latest(registry)


def by_labels(
    requests: list[tuple[str, str, int, float]],
) -> dict[tuple[str, str, int], list[float]]:
    grouped: dict[tuple[str, str, int], list[float]] = {}
    for method, route, status, seconds in requests:
        grouped.setdefault((method, route, status), []).append(seconds)
    return grouped


def batched() -> bytes:
    metrics = Metrics()
    metrics.observe_requests(by_labels(REQUESTS[:100]))
    metrics.observe_requests(by_labels(REQUESTS[100:]))
    return generate_latest(metrics.registry)


def samples(exposition: bytes) -> dict[str, float]:
    # Only the request metrics, without the creation timestamps (they differ by nature).
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in exposition.decode().splitlines()
        if line.startswith("textbook_http_request") and "_created" not in line
    }


def same(got: dict[str, float], expected: dict[str, float]) -> bool:
    """Counts exactly; sums of seconds up to float rounding (added in another order)."""
    return got.keys() == expected.keys() and all(
        got[k] == pytest.approx(v, rel=1e-12) if k.split("{")[0].endswith("_sum") else got[k] == v
        for k, v in expected.items()
    )


def test_batched_request_metrics_equal_one_observe_per_request() -> None:
    expected = samples(one_by_one())
    assert any('le="0.005"' in name for name in expected)
    assert same(samples(batched()), expected)


MULTIPROCESS = """
import sys
from prometheus_client import CollectorRegistry, generate_latest, multiprocess
sys.path.insert(0, {tests!r})
import test_core_metrics as t
getattr(t, sys.argv[1])()
registry = CollectorRegistry()
multiprocess.MultiProcessCollector(registry)
sys.stdout.write(generate_latest(registry).decode())
"""


def test_batched_request_metrics_in_multiprocess_mode(tmp_path: Path) -> None:
    """Under several gunicorn workers the values live in shared files; batches write the
    same totals there."""
    outputs = []
    for way in ("one_by_one", "batched"):
        directory = tmp_path / way
        directory.mkdir()
        script = MULTIPROCESS.format(tests=str(Path(__file__).parent))
        result = subprocess.run(
            [sys.executable, "-c", script, way],
            env={"PROMETHEUS_MULTIPROC_DIR": str(directory), "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        outputs.append(samples(result.stdout.encode()))
    assert outputs[0]
    assert same(outputs[1], outputs[0])
