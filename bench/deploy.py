"""Deploy timings on one lab container host: fresh converge, no-change re-run, and an app-only
update (`--tags backend`, a new release) under a small steady load through Nginx.

The host, inventory and lab secrets are a run of the full-stack tests' own
(tests/deploy/labdeploy.py, topology "single"; run id TEXTBOOK_TEST_RUN, else random); the host
is removed at the end unless TEXTBOOK_KEEP_LAB_HOSTS is set (then `--skip-converge` reuses it:
one untimed run brings it to the current sources, no fresh-converge figure).
During the update, tests/deploy/load.py's CountingLoad sends GET /api/v1/health through Nginx
(4 threads, at most 20 requests a second, a new TLS connection each) and records every
request's start, latency and outcome; the report keeps that timeline for `make report`.
"Extra wait" is the longest request minus the median request of the same load. Every run shares
one build cache (backend_cache_dir), as deploys from one checkout do: an update builds its new
wheel, a no-change re-run builds nothing.

Needs the lab (make lab) and the Qdrant stand-in artifact (make qdrant-artifact). A heavy run
(a few minutes on a 2-core machine); the figures are measurements, nothing here fails on a
slow machine.

    python bench/deploy.py [--skip-converge] [--updates 1]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _report import ROOT, report_dir, write_report

sys.path.insert(0, str(ROOT / "tests/deploy"))

import smoke
from labdeploy import ENV, SINGLE, changed, deploy, lab_hosts, snapshot_sources
from load import CountingLoad, LoadResult


def slowest_tasks(output: str) -> list[list[Any]]:
    """The profile_tasks callback's summary at the end of a run: [[task, seconds], ...]."""
    summary = output.rpartition("=" * 20)[2]
    return [
        [m.group(1).strip(), float(m.group(2))]
        for m in re.finditer(r"^(.+?) -+ ([0-9.]+)s$", summary, re.M)
    ]


def timed(step: str, inventory: str, sources: Path, *args: str) -> dict[str, Any]:
    """One deploy.yml run; its output (with the profile_tasks timings) is kept beside the
    report, in deploy-logs/<step>.log. The machine's load average is taken before and after:
    on a shared machine it moves the figures more than most changes do."""
    load_before = os.getloadavg()[0]
    started = time.monotonic()
    result = deploy(inventory, sources, *args)
    logs = report_dir() / "deploy-logs"
    logs.mkdir(parents=True, exist_ok=True)
    (logs / f"{step}.log").write_text(result.stdout)
    return {
        "seconds": round(time.monotonic() - started, 1),
        "changed": next(iter(changed(result.stdout).values()), None),
        "load_average_1min": {"before": load_before, "after": os.getloadavg()[0]},
        "slowest_tasks": slowest_tasks(result.stdout),
    }


def new_release(root: Path, number: int) -> Path:
    """The sources with one harmless change, so the wheel (and the release id) is new."""
    sources = snapshot_sources(root / f"release-{number}")
    with (sources / "backend/textbook/__init__.py").open("a") as init:
        init.write(f"\n# bench/deploy.py release {number} {time.time()}\n")
    return sources


def load_figures(result: LoadResult) -> dict[str, Any]:
    return {
        "requests": result.total,
        "failed": result.failed,
        "median_ms": round(result.median_wait * 1000, 1),
        "longest_ms": round(result.longest_wait * 1000, 1),
        "extra_wait_ms": round((result.longest_wait - result.median_wait) * 1000, 1),
        "timeline": [
            [round(s.started, 3), round(s.seconds * 1000, 1), s.outcome] for s in result.samples
        ],
    }


def lab_missing() -> str | None:
    """Why the lab cannot take this run, or None."""
    if not (ROOT / ".cache/qdrant-artifact").is_dir():
        return "no Qdrant stand-in artifact (make qdrant-artifact)"
    engine = subprocess.run(
        ["docker", "info"],  # noqa: S607 - the lab's docker client, as tests/deploy use it
        env=ENV,
        capture_output=True,
        check=False,
    )
    if engine.returncode != 0:
        return "the lab's Docker engine does not answer (make lab)"
    return None


def main() -> None:
    if reason := lab_missing():
        print(f"bench/deploy.py skipped: {reason}")
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-converge", action="store_true", help="the host is converged")
    parser.add_argument("--updates", type=int, default=1, help="app-only updates to measure")
    args = parser.parse_args()
    inventory = SINGLE.inventory
    host = SINGLE.host("single")
    results: dict[str, Any] = {"host": "lab container, Debian 12 (tests/deploy topology single)"}
    with tempfile.TemporaryDirectory(prefix="textbook-bench-") as tmp:
        sources = snapshot_sources(Path(tmp) / "src")
        cache = ("-e", f"backend_cache_dir={Path(tmp) / 'cache'}")
        for _ in lab_hosts(SINGLE):
            if args.skip_converge:  # a kept host, perhaps on other sources: bring it to these
                deploy(inventory, sources, *cache)
            else:
                results["fresh_converge"] = timed("fresh-converge", inventory, sources, *cache)
            results["no_change_rerun"] = timed("no-change-rerun", inventory, sources, *cache)
            stack = smoke.stack_for(host)
            updates = []
            for number in range(1, args.updates + 1):
                release = new_release(Path(tmp), number)
                time.sleep(2)  # a steady baseline before the update starts
                with CountingLoad(stack, rate=20.0, max_seconds=600) as load:
                    update = timed(
                        f"update-{number}", inventory, release, *cache, "--tags", "backend"
                    )
                    time.sleep(2)
                update["load"] = load_figures(load.result)
                print(f"update {number}: {update['seconds']} s, {load.result.summary()}")
                updates.append(update)
                sources = release
            results["app_only_update"] = updates
    path = write_report("deploy", results)
    print(f"wrote {path}")


if __name__ == "__main__":
    os.environ.setdefault("ANSIBLE_CONFIG", str(ROOT / "ansible.cfg"))
    main()
