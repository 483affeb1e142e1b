"""bench/_report.py's statistics: the confidence interval the HTTP benchmark's verdict uses."""

from __future__ import annotations

import importlib.util
import math
import random
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _report() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_report", BENCH / "_report.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


report = _report()


def coverage(n: int, k: int) -> float:
    """P(the k-th smallest of n <= median <= the k-th largest), any continuous distribution."""
    return 1 - 2 * sum(math.comb(n, i) for i in range(k)) / 2**n


@pytest.mark.parametrize(("n", "ranks"), [(6, (1, 6)), (9, (2, 8)), (25, (8, 18)), (31, (10, 22))])
def test_median_interval_takes_the_sign_test_ranks(n: int, ranks: tuple[int, int]) -> None:
    values = [float(i) for i in range(1, n + 1)]
    random.Random(n).shuffle(values)  # order of the input does not matter
    assert report.median_ci(values) == (float(ranks[0]), float(ranks[1]))
    k = ranks[0]
    # The narrowest interval of this form that still covers 95 %: one rank in does not.
    assert coverage(n, k) >= 0.95
    assert coverage(n, k + 1) < 0.95


def test_too_few_values_for_an_interval_are_refused() -> None:
    with pytest.raises(ValueError, match="5 values are too few"):
        report.median_ci([1.0, 2.0, 3.0, 4.0, 5.0])
