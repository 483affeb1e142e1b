"""`make report`: the latest measurements under reports/ as one Markdown page.

    python bench/_page.py [--reports reports]

Reads reports/bench/*.json (bench/_report.py's format), reports/eval/summary.json
(bench/eval/evaluate.py) and reports/e2e/*.json when present, and writes reports/report.md with
a table per report and, for the deploy benchmark, a figure of every request's latency during
each app-only update (reports/figures/). Each section says how it was measured (the first
paragraph of the script's docstring) and when (the report's own time and commit). Missing
reports are named, not invented. A helper of the benchmarks ("_" prefix: `make bench` does not
run it).
"""

from __future__ import annotations

import argparse
import ast
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MAX_ROWS = 40


def how_measured(script: Path) -> str:
    """The first paragraph of a script's docstring, on one line."""
    if not script.is_file():
        return "(no script found)"
    doc = ast.get_docstring(ast.parse(script.read_text(encoding="utf-8"))) or ""
    return " ".join(doc.split("\n\n")[0].split())


def when(environment: dict[str, Any]) -> str:
    parts = [str(environment.get("time", "time unknown"))]
    if environment.get("git_commit"):
        parts.append(f"commit {environment['git_commit']}")
    if environment.get("platform"):
        parts.append(f"{environment['platform']}, {environment.get('cpus', '?')} CPUs")
    return "; ".join(parts)


def table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join("" if c is None else str(c) for c in row) + " |" for row in rows]
    return lines


def scalars(value: Any, prefix: str = "") -> list[list[Any]]:
    """Every number, string and boolean of a JSON tree as [dotted.path, value]; lists of
    records are left out (raw samples, runs), lists of scalars are joined."""
    if isinstance(value, dict):
        rows: list[list[Any]] = []
        for key, item in value.items():
            rows += scalars(item, f"{prefix}.{key}" if prefix else str(key))
        return rows
    if isinstance(value, list):
        if all(not isinstance(item, dict | list) for item in value):
            return [[prefix, ", ".join(str(item) for item in value)]]
        return []
    return [[prefix, value]]


def generic(document: dict[str, Any]) -> list[str]:
    rows = scalars(document.get("results", document))
    lines = table(["figure", "value"], rows[:MAX_ROWS])
    if len(rows) > MAX_ROWS:
        lines.append(f"\n({len(rows) - MAX_ROWS} more figures in the JSON file.)")
    return lines


def update_figure(updates: list[dict[str, Any]], target: Path, stamp: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(
        len(updates), 1, figsize=(9, 3.2 * len(updates)), squeeze=False, sharex=False
    )
    for number, (update, ax) in enumerate(zip(updates, axes[:, 0], strict=True), start=1):
        load = update["load"]
        timeline = load["timeline"]
        ok = [(t, ms) for t, ms, outcome in timeline if str(outcome).startswith("2")]
        failed = [(t, ms) for t, ms, outcome in timeline if not str(outcome).startswith("2")]
        if ok:
            ax.scatter(*zip(*ok, strict=True), s=6, label="answered (2xx)")
        if failed:
            ax.scatter(*zip(*failed, strict=True), s=24, marker="x", c="red", label="failed")
        ax.set_title(
            f"app-only update {number}: {update['seconds']} s, {load['requests']} requests, "
            f"{load['failed']} failed, longest {load['longest_ms']} ms",
            fontsize=9,
        )
        ax.set_ylabel("latency (ms)")
        ax.set_xlabel("seconds since the load began (the update starts at about 0)")
        ax.legend(fontsize=8, loc="upper left")
    figure.suptitle(
        f"GET /api/v1/health through Nginx during `--tags backend`\n(measured {stamp})", fontsize=9
    )
    figure.tight_layout()
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target, dpi=110)
    plt.close(figure)


def load(run: dict[str, Any]) -> str:
    average = run.get("load_average_1min")
    return f"{average['before']:.1f} / {average['after']:.1f}" if average else "?"


def deploy_section(document: dict[str, Any], reports: Path) -> list[str]:
    results = document["results"]
    lines = [f"Host: {results.get('host', '?')}.", ""]
    runs = [
        (name.replace("_", " "), results.get(name, {}))
        for name in ("fresh_converge", "no_change_rerun")
    ]
    updates = results.get("app_only_update", [])
    runs += [(f"app-only update {n} (--tags backend)", u) for n, u in enumerate(updates, start=1)]
    lines += table(
        ["deploy.yml run", "seconds", "changed", "load average before / after"],
        [[name, run["seconds"], run["changed"], load(run)] for name, run in runs if run],
    )
    slowest = results.get("no_change_rerun", {}).get("slowest_tasks", [])
    if slowest:
        lines += ["", "Slowest tasks of the no-change re-run (profile_tasks):", ""]
        lines += table(["task", "seconds"], slowest)
    if updates:
        lines += ["", "Requests during each update (extra wait = longest - median):", ""]
        lines += table(
            ["update", "requests", "failed", "median ms", "longest ms", "extra wait ms"],
            [
                [
                    n,
                    u["load"]["requests"],
                    u["load"]["failed"],
                    u["load"]["median_ms"],
                    u["load"]["longest_ms"],
                    u["load"]["extra_wait_ms"],
                ]
                for n, u in enumerate(updates, start=1)
            ],
        )
        figure = reports / "figures" / "deploy-update-latency.png"
        environment = document.get("environment", {})
        stamp = f"{environment.get('time', 'time unknown')}, commit {environment.get('git_commit')}"
        update_figure(updates, figure, stamp)
        lines += [
            "",
            f"![Latency of every request during each app-only update]"
            f"({figure.relative_to(reports).as_posix()})",
            "",
            "Each dot is one request (a new TLS connection through Nginx); a request that waited "
            "for a gunicorn boot would stand out as a dot far above the rest.",
        ]
    return lines


def bench_sections(reports: Path) -> list[str]:
    lines: list[str] = []
    files = sorted((reports / "bench").glob("*.json"))
    if not files:
        return ["## Benchmarks", "", "No report under reports/bench/ (run `make bench`).", ""]
    for path in files:
        document = json.loads(path.read_text(encoding="utf-8"))
        name = document.get("benchmark", path.stem)
        lines += [f"## Benchmark: {name}", ""]
        lines += [f"*How:* {how_measured(ROOT / 'bench' / f'{name}.py')}", ""]
        lines += [f"*When:* {when(document.get('environment', {}))} ({path.name}).", ""]
        lines += deploy_section(document, reports) if name == "deploy" else generic(document)
        lines.append("")
    return lines


def eval_section(reports: Path) -> list[str]:
    path = reports / "eval" / "summary.json"
    lines = ["## Retrieval evaluation", ""]
    if not path.is_file():
        return [*lines, "No reports/eval/summary.json (run `make eval`).", ""]
    summary = json.loads(path.read_text(encoding="utf-8"))
    lines += [f"*How:* {how_measured(ROOT / 'bench/eval/evaluate.py')}", ""]
    lines += [
        f"*When:* {summary.get('created', '?')}; {summary.get('questions', '?')} questions.",
        "",
    ]
    rows = [
        [name, m.get("hit@1"), m.get("hit@5"), m.get("mrr@10"), m.get("chunks")]
        for name, m in summary.get("variants", {}).items()
    ]
    lines += table(["variant", "hit@1", "hit@5", "MRR@10", "chunks"], rows)
    if "goal_met" in summary:
        lines += ["", f"Goal {summary.get('goal')}: {'met' if summary['goal_met'] else 'NOT met'}."]
    return [*lines, ""]


def written_at(path: Path) -> str:
    """When a report without its own time was written (its file's modification time)."""
    stamp = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    return stamp.isoformat(timespec="seconds")


def e2e_section(reports: Path) -> list[str]:
    files = sorted((reports / "e2e").glob("*.json"))
    if not files:
        return []
    lines = ["## End-to-end runs", ""]
    lines += [f"*How:* {how_measured(ROOT / 'tests/deploy/e2e.py')}", ""]
    for path in files:
        document = json.loads(path.read_text(encoding="utf-8"))
        lines += [f"### {path.stem}", ""]
        if isinstance(document.get("environment"), dict):
            lines += [f"*When:* {when(document['environment'])}.", ""]
        else:
            lines += [f"*When:* {written_at(path)} (the file's time).", ""]
        lines += [*generic(document), ""]
    return lines


def render(reports: Path) -> Path:
    lines = [
        "# Measurements",
        "",
        "Made by `make report` from the latest files under reports/ (`make bench`, "
        "`make eval` and the end-to-end runs write them); each section says how and when "
        "its figures were measured.",
        "",
        *bench_sections(reports),
        *eval_section(reports),
        *e2e_section(reports),
    ]
    page = reports / "report.md"
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    return page


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=Path, default=ROOT / "reports")
    print(f"wrote {render(parser.parse_args().reports)}")


if __name__ == "__main__":
    main()
