"""`make report` (bench/_page.py): the latest reports/ as one Markdown page with a figure."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from types import ModuleType

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"


def _page() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_page", BENCH_DIR / "_page.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


ENVIRONMENT = {"time": "2026-12-03T13:00:00+00:00", "git_commit": "abc1234", "cpus": 2}


def _write(path: Path, document: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document), encoding="utf-8")


def test_page_has_tables_a_latency_figure_and_says_how_and_when(tmp_path: Path) -> None:
    timeline = [[i * 0.25, 12.0, "200"] for i in range(40)] + [[10.0, 3.0, "ConnectionError"]]
    _write(
        tmp_path / "bench/deploy.json",
        {
            "benchmark": "deploy",
            "environment": ENVIRONMENT,
            "results": {
                "host": "lab container",
                "fresh_converge": {"seconds": 301.5, "changed": 88},
                "no_change_rerun": {
                    "seconds": 27.4,
                    "changed": 0,
                    "load_average_1min": {"before": 3.14, "after": 4.0},
                    "slowest_tasks": [["backend : The backend wheel is built", 1.25]],
                },
                "app_only_update": [
                    {
                        "seconds": 18.2,
                        "changed": 12,
                        "load": {
                            "requests": 41,
                            "failed": 1,
                            "median_ms": 12.0,
                            "longest_ms": 12.0,
                            "extra_wait_ms": 0.0,
                            "timeline": timeline,
                        },
                    }
                ],
            },
        },
    )
    _write(
        tmp_path / "bench/http_server.json",
        {"benchmark": "http_server", "environment": ENVIRONMENT, "results": {"rps": 5212.5}},
    )
    _write(
        tmp_path / "eval/summary.json",
        {
            "created": "2026-12-03T12:00:00+00:00",
            "questions": 30,
            "variants": {"default": {"hit@1": 0.93, "hit@5": 1.0, "mrr@10": 0.95, "chunks": 80}},
        },
    )

    page = _page().render(tmp_path).read_text(encoding="utf-8")

    assert "| fresh converge | 301.5 | 88 | ? |" in page  # no load recorded: not invented
    assert "| no change rerun | 27.4 | 0 | 3.1 / 4.0 |" in page
    assert "| backend : The backend wheel is built | 1.25 |" in page
    assert "| app-only update 1 (--tags backend) | 18.2 | 12 | ? |" in page
    assert "| 1 | 41 | 1 | 12.0 | 12.0 | 0.0 |" in page
    assert "| rps | 5212.5 |" in page
    assert "| default | 0.93 | 1.0 | 0.95 | 80 |" in page
    assert "*When:* 2026-12-03T13:00:00+00:00; commit abc1234" in page
    assert "*How:* Deploy timings on one lab container host" in page  # bench/deploy.py's docstring
    assert "](figures/deploy-update-latency.png)" in page
    assert (tmp_path / "figures/deploy-update-latency.png").read_bytes().startswith(b"\x89PNG")
    assert "End-to-end" not in page  # no reports/e2e: no section


def test_missing_reports_are_named_not_invented(tmp_path: Path) -> None:
    page = _page().render(tmp_path).read_text(encoding="utf-8")
    assert "No report under reports/bench/ (run `make bench`)." in page
    assert "No reports/eval/summary.json (run `make eval`)." in page
    assert not (tmp_path / "figures").exists()


def test_end_to_end_reports_say_how_and_when_from_the_script_and_the_file(tmp_path: Path) -> None:
    drill = tmp_path / "e2e/drill-qdrant-restart.json"
    _write(drill, {"drill": "qdrant-restart", "requests": 74, "failed": 0, "failures": []})
    os.utime(drill, (1_796_300_000, 1_796_300_000))  # 2026-12-03T12:13:20+00:00

    page = _page().render(tmp_path).read_text(encoding="utf-8")

    assert "## End-to-end runs" in page
    assert "*How:* Measurements of a deployed lab host" in page  # tests/deploy/e2e.py's docstring
    assert "### drill-qdrant-restart" in page
    assert "*When:* 2026-12-03T12:13:20+00:00 (the file's time)." in page
    assert "| failed | 0 |" in page
