"""Shared helpers for the benchmarks: latency summaries and the JSON report files.

Every benchmark writes `reports/bench/<name>.json` (or under $BENCH_REPORT_DIR):

    {"benchmark": name, "environment": {...}, "results": {...}}

Scripts import it as `from _report import ...` (Python puts the script's directory on
sys.path when running `python bench/<script>.py`).
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REPORT_DIR = ROOT / "reports" / "bench"


def report_dir() -> Path:
    return Path(os.environ.get("BENCH_REPORT_DIR", DEFAULT_REPORT_DIR))


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation between closest ranks."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """A distribution-free confidence interval for the median (the sign test's): the k-th
    smallest and k-th largest of the values, k the largest rank whose binomial tail stays
    within (1 - confidence) / 2. Needs at least 6 values for 95 %."""
    n = len(values)
    tail = (1 - confidence) / 2
    cumulative, k = 0.0, 0
    while k < n:
        cumulative += math.comb(n, k) / 2**n  # P(fewer than k + 1 values below the median)
        if cumulative > tail:
            break
        k += 1
    if k == 0:
        raise ValueError(f"{n} values are too few for a {confidence:.0%} interval of the median")
    ordered = sorted(values)
    return ordered[k - 1], ordered[n - k]


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    """count, mean, p50, p95, p99 and max of durations, in milliseconds."""
    ms = [s * 1000 for s in seconds]
    return {
        "count": len(ms),
        "mean_ms": round(sum(ms) / len(ms), 3),
        "p50_ms": round(percentile(ms, 50), 3),
        "p95_ms": round(percentile(ms, 95), 3),
        "p99_ms": round(percentile(ms, 99), 3),
        "max_ms": round(max(ms), 3),
    }


@contextmanager
def stopwatch() -> Iterator[list[float]]:
    """`with stopwatch() as elapsed: ...` then `elapsed[0]` holds the seconds taken."""
    elapsed: list[float] = []
    started = time.perf_counter()
    try:
        yield elapsed
    finally:
        elapsed.append(time.perf_counter() - started)


def _git_commit() -> str | None:
    try:
        result = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,  # noqa: S607
                                capture_output=True, text=True, check=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None


def environment() -> dict[str, Any]:
    return {
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": _git_commit(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }


def write_report(name: str, results: dict[str, Any]) -> Path:
    """Write reports/bench/<name>.json and return its path."""
    target = report_dir() / f"{name}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    document = {"benchmark": name, "environment": environment(), "results": results}
    target.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return target
