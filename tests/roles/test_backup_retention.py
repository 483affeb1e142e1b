"""Retention of roles/backup's program (textbook-backup): which sets `prune` keeps."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from script_module import load_script

PROGRAM = Path(__file__).resolve().parents[2] / "roles/backup/files/textbook_backup.py"


@pytest.fixture(scope="module")
def program() -> ModuleType:
    return load_script(PROGRAM, "textbook_backup")


def settings(program: ModuleType, tmp_path: Path, **keep: int) -> Any:
    return program.Settings(
        {
            "backup_dir": str(tmp_path),
            "status_file": str(tmp_path / "status.json"),
            "database": "textbook",
            "database_owner": "textbook",
            "qdrant_url": "http://127.0.0.1:6333",
            "keep": {"hourly": 0, "daily": 0, "weekly": 0, "monthly": 0, **keep},
            "keep_safety": 2,
        }
    )


def make_sets(tmp_path: Path, *names: str) -> None:
    for name in names:
        (tmp_path / name).mkdir()
        (tmp_path / name / "manifest.json").write_text(json.dumps({"files": {}}))


def remaining(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in tmp_path.iterdir() if p.is_dir())


def test_hourly_keeps_the_newest_set_of_each_of_the_last_hours(
    program: ModuleType, tmp_path: Path
) -> None:
    make_sets(
        tmp_path,
        "20261203T100500Z", "20261203T103000Z",  # hour 10
        "20261203T110500Z", "20261203T113000Z",  # hour 11
        "20261203T120500Z",  # hour 12
    )  # fmt: skip
    removed = program.prune(settings(program, tmp_path, hourly=2))
    assert remaining(tmp_path) == ["20261203T113000Z", "20261203T120500Z"]
    assert sorted(removed) == ["20261203T100500Z", "20261203T103000Z", "20261203T110500Z"]


def test_daily_weekly_monthly_add_the_newest_set_of_older_periods(
    program: ModuleType, tmp_path: Path
) -> None:
    make_sets(
        tmp_path,
        "20260915T010000Z",  # September
        "20261020T010000Z", "20261025T010000Z",  # October
        "20261202T010000Z", "20261203T010000Z", "20261203T020000Z",
    )  # fmt: skip
    program.prune(settings(program, tmp_path, daily=2, monthly=2))  # months that have sets
    assert remaining(tmp_path) == [
        "20261025T010000Z",  # newest of October (monthly)
        "20261202T010000Z",  # newest of Dec 2 (daily)
        "20261203T020000Z",  # newest of Dec 3 (daily, and monthly for December)
    ]


def test_safety_sets_are_outside_the_rotation_and_the_last_ones_kept(
    program: ModuleType, tmp_path: Path
) -> None:
    make_sets(
        tmp_path,
        "20261201T010000Z-prerestore", "20261202T010000Z-prerestore",
        "20261203T010000Z-prerestore", "20261203T020000Z",
    )  # fmt: skip
    (tmp_path / ".partial-20261203T030000Z").mkdir()  # left by a killed run
    program.prune(settings(program, tmp_path))
    assert remaining(tmp_path) == [
        "20261202T010000Z-prerestore",
        "20261203T010000Z-prerestore",
        "20261203T020000Z",  # the newest regular set, whatever the counts
    ]


def test_verify_names_the_file_that_differs_from_its_manifest(
    program: ModuleType, tmp_path: Path
) -> None:
    folder = tmp_path / "20261203T020000Z"
    folder.mkdir()
    (folder / "postgresql.dump").write_bytes(b"dump")
    digest = program.sha256(folder / "postgresql.dump")
    manifest = {"files": {"postgresql.dump": {"bytes": 4, "sha256": digest}}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert program.verify(folder) == manifest
    (folder / "postgresql.dump").write_bytes(b"dumb")
    with pytest.raises(program.BackupError, match=r"postgresql\.dump does not match"):
        program.verify(folder)


def test_a_safety_set_prunes_no_regular_set(program: ModuleType, tmp_path: Path) -> None:
    """restore.yml writes a safety set just before it restores: a set fetched from offsite that
    is older than a local one of the same hour must still be there to restore (seen in the
    four-host drill, where the fresh host's own hourly set made retention drop it)."""
    make_sets(
        tmp_path,
        "20261203T231713Z",  # fetched from offsite, the set to restore
        "20261203T231719Z",  # the host's own, same hour
        "20261203T231742Z-prerestore",
    )  # fmt: skip
    kept = settings(program, tmp_path, hourly=1)
    assert program.prune(kept, safety_only=True) == []
    assert program.prune(kept) == ["20261203T231713Z"]  # what regular retention does


def test_a_set_fetched_for_a_restore_is_kept_until_restored(
    program: ModuleType, tmp_path: Path
) -> None:
    """A scheduled backup between `fetch` and `restore` (seen in the four-host drill: the fresh
    host's hourly run at :17 during restore.yml) must not prune the fetched set."""
    make_sets(tmp_path, "20261204T001633Z", "20261204T001701Z")
    (tmp_path / "20261204T001633Z" / program.FETCHED).touch()
    kept = settings(program, tmp_path, hourly=1)
    assert program.prune(kept) == []
    (tmp_path / "20261204T001633Z" / program.FETCHED).unlink()  # what a restore does
    assert program.prune(kept) == ["20261204T001633Z"]
