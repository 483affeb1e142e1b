#!/usr/bin/python3
"""textbook-backup: backup sets of the textbook's PostgreSQL database and Qdrant collections.

Installed by roles/backup as /usr/local/sbin/textbook-backup; runs as root on the db host,
with the settings in /etc/textbook-backup/config.json (the role renders it; mode 0600).

    textbook-backup backup [--reason R]  one set: pg_dump (custom format), a Qdrant snapshot of
                                         every collection, manifest.json; then retention
    textbook-backup verify [SET]         sizes and sha256 of a set's files against its manifest
    textbook-backup restore-test         the latest set into a scratch database and scratch
                                         collections, counts compared with the manifest, dropped
    textbook-backup restore SET|latest   verify, then replace the database and the collections
                                         (the backend must be stopped: playbooks/restore.yml)
    textbook-backup list | status        sets on disk / the status file
    textbook-backup offsite-list         sets in the offsite restic repository
    textbook-backup fetch SET|latest     an offsite set copied back to disk (a fresh host)

A set is <backup_dir>/<UTC time>[-<reason>]/; it is written under a .partial name and renamed
when complete, so a set that exists is whole. Every failure exits non-zero, writes an
error-priority journal line and is recorded in the status file. Python standard library only
(3.10+: Ubuntu 22.04's python3), so it runs on every supported host without a venv.
"""

# Fixed tools (pg_dump, psql, logger, ...) from PATH with argument lists, never a shell.
# ruff: noqa: S603, S607
from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

CONFIG = Path(os.environ.get("TEXTBOOK_BACKUP_CONFIG", "/etc/textbook-backup/config.json"))
TAG = "textbook-backup"
PRIORITIES = {"err": 3, "info": 6}
LOCKS: list[Any] = []  # open lock files, held until exit
STAMP = "%Y%m%dT%H%M%SZ"
# Retention buckets: a set is kept when it is the newest of one of the last N hours/days/...
BUCKETS = {"hourly": "%Y%m%d%H", "daily": "%Y%m%d", "weekly": "%G%V", "monthly": "%Y%m"}
SCRATCH_SUFFIX = "_restoretest"
COUNT_ROWS = (
    "SELECT table_name, (xpath('/row/c/text()', query_to_xml(format("
    "'SELECT count(*) AS c FROM %I.%I', table_schema, table_name), false, true, '')))[1]::text "
    "FROM information_schema.tables WHERE table_schema = 'public' "
    "AND table_type = 'BASE TABLE' ORDER BY 1;"
)


class BackupError(Exception):
    """A failure the operator must see: the message says what and where."""


def now() -> datetime:
    return datetime.now(timezone.utc)  # noqa: UP017 (Ubuntu 22.04 has Python 3.10)


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def journal(priority: str, message: str) -> None:
    """One line in the journal with syslog priority `err` or `info`. Under cron's systemd-cat or
    the timer's unit (TEXTBOOK_BACKUP_STDIO_JOURNAL=1) stdout already is the journal and a
    <N> prefix sets the priority; otherwise the line goes to logger and to the caller."""
    if os.environ.get("TEXTBOOK_BACKUP_STDIO_JOURNAL") == "1":
        print(f"<{PRIORITIES[priority]}>{message}", flush=True)
        return
    print(message, file=sys.stderr if priority == "err" else sys.stdout, flush=True)
    subprocess.run(["logger", "-t", TAG, "-p", f"user.{priority}", "--", message], check=False)


class Settings:
    def __init__(self, data: dict[str, Any]) -> None:
        self.dir = Path(data["backup_dir"])
        self.status_file = Path(data["status_file"])
        self.database = str(data["database"])
        self.db_owner = str(data["database_owner"])
        self.postgres_user = str(data.get("postgres_os_user", "postgres"))
        self.qdrant_url = str(data["qdrant_url"]).rstrip("/")
        self.qdrant_api_key = str(data.get("qdrant_api_key", ""))
        self.keep = {name: int(data["keep"].get(name, 0)) for name in BUCKETS}
        self.keep_safety = int(data.get("keep_safety", 3))
        self.min_free_mb = int(data.get("min_free_mb", 0))
        self.release_link = Path(data.get("release_link", "/opt/textbook/current"))
        self.release_id = str(data.get("release_id", ""))
        offsite = data.get("offsite") or {}
        self.offsite_repository = str(offsite.get("repository", ""))
        self.offsite_password = str(offsite.get("password", ""))
        self.offsite_env = {str(k): str(v) for k, v in (offsite.get("env") or {}).items()}


def load_settings() -> Settings:
    try:
        return Settings(json.loads(CONFIG.read_text()))
    except (OSError, ValueError, KeyError) as exc:
        raise BackupError(f"cannot read the settings {CONFIG}: {exc}") from exc


# --- status file --------------------------------------------------------------------------
def read_status(settings: Settings) -> dict[str, Any]:
    try:
        return dict(json.loads(settings.status_file.read_text()))
    except (OSError, ValueError):
        return {}


def record(settings: Settings, key: str, entry: dict[str, Any]) -> None:
    """Status entry `key` (last_backup, last_restore_test, ...); a successful one is also the
    last good one (last_good_backup, last_good_restore_test)."""
    status = read_status(settings)
    status[key] = entry
    if entry.get("ok"):
        status[key.replace("last_", "last_good_", 1)] = entry
    sets = list_sets(settings)
    status["sets"] = [s.name for s in sets]
    status["total_bytes"] = sum(file_size(s) for s in sets)
    status["updated"] = iso(now())
    settings.status_file.parent.mkdir(parents=True, exist_ok=True)
    partial = settings.status_file.with_suffix(".tmp")
    partial.write_text(json.dumps(status, indent=1, sort_keys=True) + "\n")
    partial.replace(settings.status_file)


def file_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# --- PostgreSQL ---------------------------------------------------------------------------
def as_postgres(settings: Settings, *argv: str) -> list[str]:
    return ["runuser", "-u", settings.postgres_user, "--", *argv]


def run(argv: list[str], what: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, text=True, capture_output=True, check=False, **kwargs)
    if result.returncode != 0:
        raise BackupError(f"{what} failed (exit {result.returncode}): {result.stderr.strip()}")
    return result


def parse_counts(output: str) -> dict[str, int]:
    rows = (line.split("|") for line in output.splitlines() if "|" in line)
    return {name: int(count) for name, count in rows}


def dump_database(settings: Settings, target: Path) -> dict[str, Any]:
    """pg_dump in the same snapshot the row counts are taken in (an exported snapshot held open
    by a repeatable-read transaction), so the counts describe exactly what the dump holds."""
    session = subprocess.Popen(
        as_postgres(
            settings, "psql", "-X", "-At", "-q", "-v", "ON_ERROR_STOP=1", settings.database
        ),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert session.stdin is not None and session.stdout is not None

    def query(sql: str) -> list[str]:
        assert session.stdin is not None and session.stdout is not None
        session.stdin.write(f"{sql}\nSELECT '--end--';\n")
        session.stdin.flush()
        lines = []
        while (line := session.stdout.readline()) and line.strip() != "--end--":
            lines.append(line.rstrip("\n"))
        if not line:
            raise BackupError(f"psql on {settings.database} ended: {session.communicate()[1]}")
        return lines

    try:
        query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;")
        snapshot = query("SELECT pg_export_snapshot();")[0]
        counts = parse_counts("\n".join(query(COUNT_ROWS)))
        version = ""
        if query("SELECT to_regclass('public.alembic_version') IS NOT NULL;") == ["t"]:
            version = ",".join(query("SELECT version_num FROM alembic_version;"))
        with target.open("wb") as out:
            dump = subprocess.run(
                as_postgres(
                    settings, "pg_dump", "-Fc", f"--snapshot={snapshot}", settings.database
                ),
                stdout=out,
                stderr=subprocess.PIPE,
                check=False,
            )
        if dump.returncode != 0:
            raise BackupError(f"pg_dump failed: {dump.stderr.decode(errors='replace').strip()}")
        query("COMMIT;")
    finally:
        if session.stdin is not None:
            session.stdin.close()
        session.wait(timeout=60)
    return {"database": settings.database, "alembic_revision": version, "rows": counts}


def count_rows(settings: Settings, database: str) -> dict[str, int]:
    result = run(as_postgres(settings, "psql", "-X", "-At", "-c", COUNT_ROWS, database), "psql")
    return parse_counts(result.stdout)


def restore_database(settings: Settings, dump: Path, database: str, owner: str) -> None:
    """`database` recreated empty (owned by `owner`) and filled from the dump."""
    run(as_postgres(settings, "dropdb", "--if-exists", "--force", database), "dropdb")
    run(as_postgres(settings, "createdb", "-O", owner, database), "createdb")
    # pg_restore reads the dump on stdin: the postgres user need not read the backup directory.
    with dump.open("rb") as source:
        result = subprocess.run(
            as_postgres(settings, "pg_restore", "--exit-on-error", "-d", database),
            stdin=source,
            capture_output=True,
            check=False,
        )
    if result.returncode != 0:
        raise BackupError(f"pg_restore into {database} failed: {result.stderr.decode().strip()}")


# --- Qdrant -------------------------------------------------------------------------------
def qdrant(
    settings: Settings,
    method: str,
    path: str,
    body: Any = None,
    *,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
    save_to: Path | None = None,
    timeout: float = 600,
) -> Any:
    all_headers = dict(headers or {})
    if settings.qdrant_api_key:
        all_headers["api-key"] = settings.qdrant_api_key
    if body is not None:
        data = json.dumps(body).encode()
        all_headers["Content-Type"] = "application/json"
    url = settings.qdrant_url + path
    request = urllib.request.Request(url, data=data, method=method, headers=all_headers)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            if save_to is not None:
                save(response, save_to)
                return None
            return json.loads(response.read() or b"null").get("result")
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:300]
        raise BackupError(f"Qdrant {method} {path}: HTTP {exc.code} {detail}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise BackupError(f"Qdrant {method} {url} unreachable: {exc}") from exc


def save(response: Any, target: Path) -> None:
    """A download written to `target`; a write error (a full disk) is the target's fault."""
    try:
        with target.open("wb") as out:
            shutil.copyfileobj(response, out, 1 << 20)
    except OSError as exc:
        raise BackupError(f"cannot write {target}: {exc}") from exc


def collections(settings: Settings) -> list[str]:
    return sorted(c["name"] for c in qdrant(settings, "GET", "/collections")["collections"])


def count_points(settings: Settings, collection: str) -> int:
    body = {"exact": True}
    return int(qdrant(settings, "POST", f"/collections/{collection}/points/count", body)["count"])


def snapshot_collection(settings: Settings, collection: str, target: Path) -> int:
    """The collection's snapshot downloaded to `target`; the server's copy deleted again."""
    created = qdrant(settings, "POST", f"/collections/{collection}/snapshots?wait=true")
    name = created["name"]
    try:
        points = count_points(settings, collection)
        qdrant(settings, "GET", f"/collections/{collection}/snapshots/{name}", save_to=target)
    finally:
        qdrant(settings, "DELETE", f"/collections/{collection}/snapshots/{name}?wait=true")
    if created.get("checksum") and created["checksum"] != sha256(target):
        raise BackupError(f"snapshot {name} of {collection}: download differs from the server's")
    return points


def upload_snapshot(settings: Settings, collection: str, snapshot: Path) -> None:
    """Collection `collection` replaced by the snapshot (created when absent)."""
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="snapshot"; '
        f'filename="{snapshot.name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()
    body = head + snapshot.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    qdrant(
        settings,
        "POST",
        f"/collections/{collection}/snapshots/upload?priority=snapshot&wait=true"
        f"&checksum={sha256(snapshot)}",
        data=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )


# --- sets ---------------------------------------------------------------------------------
def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def list_sets(settings: Settings) -> list[Path]:
    """Complete sets, oldest first (names start with their UTC time)."""
    if not settings.dir.is_dir():
        return []
    return sorted(p for p in settings.dir.iterdir() if (p / "manifest.json").is_file())


def set_time(path: Path) -> datetime:
    return datetime.strptime(path.name[:16], STAMP).replace(tzinfo=timezone.utc)  # noqa: UP017


def find_set(settings: Settings, name: str) -> Path:
    sets = list_sets(settings)
    if name == "latest":
        regular = [s for s in sets if "-" not in s.name]
        if not regular:
            raise BackupError(f"no backup set in {settings.dir}")
        return regular[-1]
    for candidate in sets:
        if candidate.name == name:
            return candidate
    known = ", ".join(s.name for s in sets) or "none"
    raise BackupError(f"no backup set {name!r} in {settings.dir} (sets: {known})")


def release_id(settings: Settings) -> str:
    if settings.release_link.is_symlink():
        return os.readlink(settings.release_link).rstrip("/").rsplit("/", 1)[-1]
    return settings.release_id or "unknown"


def backup(settings: Settings, reason: str = "") -> Path:
    started = time.monotonic()
    moment = now()
    settings.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    free_mb = shutil.disk_usage(settings.dir).free // (1 << 20)
    if free_mb < settings.min_free_mb:
        raise BackupError(
            f"{settings.dir}: {free_mb} MiB free, fewer than min_free_mb={settings.min_free_mb}"
        )
    name = moment.strftime(STAMP) + (f"-{reason}" if reason else "")
    partial = settings.dir / f".partial-{name}"
    final = settings.dir / name
    partial.mkdir(mode=0o700)
    try:
        (partial / "qdrant").mkdir()
        postgres = dump_database(settings, partial / "postgresql.dump")
        points = {
            c: snapshot_collection(settings, c, partial / "qdrant" / f"{c}.snapshot")
            for c in collections(settings)
        }
        files = {
            str(p.relative_to(partial)): {"bytes": p.stat().st_size, "sha256": sha256(p)}
            for p in sorted(partial.rglob("*"))
            if p.is_file()
        }
        manifest = {
            "format": 1,
            "time": iso(moment),
            "reason": reason or "scheduled",
            "release": release_id(settings),
            "alembic_revision": postgres["alembic_revision"],
            "database": postgres["database"],
            "rows": postgres["rows"],
            "points": points,
            "files": files,
            "seconds": round(time.monotonic() - started, 1),
        }
        (partial / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
        partial.rename(final)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return final


# Marker in a set copied back from offsite: retention keeps it until a restore has used it (a
# scheduled backup between `fetch` and `restore` could otherwise prune it).
FETCHED = "fetched-awaiting-restore"


def prune(
    settings: Settings, keep_also: Path | None = None, safety_only: bool = False
) -> list[str]:
    """Sets outside retention removed: per bucket kind the newest set of each of the last N
    hours/days/weeks/months (regular sets); the last keep_safety pre-restore sets. With
    safety_only, every regular set stays (a restore's safety set: the set about to be restored
    may be one fetched from offsite that regular retention would drop)."""
    sets = list_sets(settings)
    regular = [s for s in sets if "-" not in s.name]
    keep = {s for s in [keep_also] if s is not None}
    keep.update(s for s in regular if (s / FETCHED).exists())  # awaiting its restore
    if safety_only:
        keep.update(regular)
    if regular:
        keep.add(regular[-1])
    for bucket, pattern in BUCKETS.items():
        seen: set[str] = set()
        for candidate in reversed(regular):
            key = set_time(candidate).strftime(pattern)
            if key not in seen and len(seen) < settings.keep[bucket]:
                seen.add(key)
                keep.add(candidate)
    other = [s for s in sets if "-" in s.name]
    keep.update(other[-settings.keep_safety :] if settings.keep_safety else [])
    removed = []
    for candidate in sets:
        if candidate not in keep:
            shutil.rmtree(candidate)
            removed.append(candidate.name)
    for stale in settings.dir.glob(".partial-*"):  # left by a run that was killed
        shutil.rmtree(stale, ignore_errors=True)
    return removed


def verify(path: Path) -> dict[str, Any]:
    """The manifest of a set whose every file has the size and sha256 the manifest names."""
    try:
        manifest: dict[str, Any] = json.loads((path / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        raise BackupError(f"{path}: unreadable manifest: {exc}") from exc
    for name, expected in manifest["files"].items():
        file = path / name
        if not file.is_file():
            raise BackupError(f"{path.name}: {name} is missing")
        if file.stat().st_size != expected["bytes"] or sha256(file) != expected["sha256"]:
            raise BackupError(f"{path.name}: {name} does not match its manifest checksum")
    return manifest


def restore_test(settings: Settings) -> dict[str, Any]:
    """The latest set restored beside the live data, compared with its manifest, dropped."""
    path = find_set(settings, "latest")
    manifest = verify(path)
    scratch_db = settings.database + SCRATCH_SUFFIX
    problems = []
    try:
        restore_database(settings, path / "postgresql.dump", scratch_db, settings.postgres_user)
        rows = count_rows(settings, scratch_db)
        if rows != manifest["rows"]:
            problems.append(f"rows {rows} != manifest {manifest['rows']}")
    finally:
        run(as_postgres(settings, "dropdb", "--if-exists", scratch_db), "dropdb")
    for collection, expected in manifest["points"].items():
        scratch = collection + SCRATCH_SUFFIX
        try:
            upload_snapshot(settings, scratch, path / "qdrant" / f"{collection}.snapshot")
            points = count_points(settings, scratch)
            if points != expected:
                problems.append(f"{collection}: {points} points != manifest {expected}")
        finally:
            qdrant(settings, "DELETE", f"/collections/{scratch}")
    if problems:
        raise BackupError(f"restore test of {path.name}: " + "; ".join(problems))
    return {"set": path.name, "rows": manifest["rows"], "points": manifest["points"]}


def restore(settings: Settings, name: str) -> dict[str, Any]:
    path = find_set(settings, name)
    manifest = verify(path)  # before anything is touched
    restore_database(settings, path / "postgresql.dump", settings.database, settings.db_owner)
    for collection in manifest["points"]:
        upload_snapshot(settings, collection, path / "qdrant" / f"{collection}.snapshot")
    rows = count_rows(settings, settings.database)
    points = {c: count_points(settings, c) for c in manifest["points"]}
    if rows != manifest["rows"] or points != manifest["points"]:
        raise BackupError(f"restored {path.name}, but counts differ: {rows} {points}")
    (path / FETCHED).unlink(missing_ok=True)
    return {"set": path.name, "rows": rows, "points": points, "release": manifest["release"]}


# --- offsite copies (restic) ---------------------------------------------------------------
RESTIC_TAG = "textbook-backup"
# Each host's sets form their own group for `forget`: a new host's pushes (before its restore,
# say) never prune the sets of the host it replaces. Listing and fetching see every host's sets.
RESTIC_HOST = socket.gethostname()


def restic_env(settings: Settings) -> dict[str, str]:
    """The repository and its password in the environment (never on a command line), plus the
    repository's own variables (S3 keys, ...)."""
    if not settings.offsite_repository:
        raise BackupError("no offsite repository configured (backup_offsite_repository)")
    return {
        **os.environ,
        **settings.offsite_env,
        "RESTIC_REPOSITORY": settings.offsite_repository,
        "RESTIC_PASSWORD": settings.offsite_password,
    }


def restic(settings: Settings, *args: str, what: str = "restic", cwd: Path | None = None) -> str:
    return run(["restic", "--no-cache", *args], what, env=restic_env(settings), cwd=cwd).stdout


def offsite_push(settings: Settings, path: Path) -> dict[str, Any]:
    """The set copied into the restic repository (initialised on first use), tagged with its
    name; then the repository's retention, the same counts as the local one."""
    env_check = subprocess.run(
        ["restic", "--no-cache", "cat", "config"],
        env=restic_env(settings),
        capture_output=True,
        text=True,
        check=False,
    )
    if env_check.returncode != 0:
        restic(settings, "init", what="restic init (offsite repository)")
    restic(
        settings,
        "backup",
        "--host",
        RESTIC_HOST,
        "--tag",
        RESTIC_TAG,
        "--tag",
        f"set={path.name}",
        path.name,
        what="restic backup (offsite copy)",
        cwd=settings.dir,
    )
    keep = [f"--keep-{name}={count}" for name, count in settings.keep.items() if count > 0]
    if keep:
        restic(
            settings,
            "forget",
            "--host",
            RESTIC_HOST,
            "--tag",
            RESTIC_TAG,
            "--group-by",
            "host",
            "--prune",
            *keep,
            what="restic forget (offsite retention)",
        )
    return {
        "repository": settings.offsite_repository.split("@")[-1],
        "sets": offsite_sets(settings),
    }


def offsite_snapshots(settings: Settings) -> dict[str, str]:
    """Offsite set name -> restic snapshot id."""
    out = restic(settings, "snapshots", "--json", "--tag", RESTIC_TAG, what="restic snapshots")
    found = {}
    for snapshot in json.loads(out or "[]"):
        for tag in snapshot.get("tags") or []:
            if tag.startswith("set="):
                found[tag[4:]] = snapshot["id"]
    return dict(sorted(found.items()))


def offsite_sets(settings: Settings) -> list[str]:
    return list(offsite_snapshots(settings))


def fetch(settings: Settings, name: str) -> Path:
    """An offsite set copied back into backup_dir (e.g. on a fresh host), then verified."""
    snapshots = offsite_snapshots(settings)
    regular = [n for n in snapshots if "-" not in n]
    if name == "latest":
        if not regular:
            raise BackupError(f"no backup set in {settings.offsite_repository.split('@')[-1]}")
        name = regular[-1]
    if name not in snapshots:
        raise BackupError(f"no offsite set {name!r} (offsite sets: {', '.join(snapshots)})")
    final = settings.dir / name
    if (final / "manifest.json").is_file():
        verify(final)
        (final / FETCHED).touch()
        return final
    settings.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    staging = settings.dir / f".partial-fetch-{name}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        restic(
            settings, "restore", snapshots[name], "--target", str(staging), what="restic restore"
        )
        found = [m.parent for m in staging.rglob("manifest.json") if m.parent.name == name]
        if len(found) != 1:
            raise BackupError(f"offsite snapshot of {name} holds no set {name}")
        (found[0] / FETCHED).touch()
        found[0].rename(final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    verify(final)
    return final


# --- commands -----------------------------------------------------------------------------
def command_backup(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    path = backup(settings, args.reason)
    manifest = json.loads((path / "manifest.json").read_text())
    pruned = prune(settings, keep_also=path, safety_only=bool(args.reason))
    # Safety sets (a reason) stay local: offsite retention counts regular sets only.
    offsite = (
        offsite_push(settings, path) if settings.offsite_repository and not args.reason else None
    )
    return {
        "offsite": offsite,
        "set": path.name,
        "bytes": file_size(path),
        "rows": manifest["rows"],
        "points": manifest["points"],
        "release": manifest["release"],
        "alembic_revision": manifest["alembic_revision"],
        "pruned": pruned,
        "seconds": round(time.monotonic() - started, 1),
    }


def hold_lock(settings: Settings) -> None:
    """One writer at a time (a scheduled run and an on-demand one wait for each other): an
    exclusive lock on <backup_dir>/.lock, held until the process ends."""
    settings.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    handle = (settings.dir / ".lock").open("w")
    fcntl.flock(handle, fcntl.LOCK_EX)
    LOCKS.append(handle)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="textbook-backup", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_backup = sub.add_parser("backup", help="write one backup set, then apply retention")
    run_backup.add_argument("--reason", default="", help="suffix of a set kept out of retention")
    sub.add_parser("restore-test", help="restore the latest set into scratch copies and compare")
    run_restore = sub.add_parser("restore", help="replace the live data with a set")
    run_restore.add_argument("set", nargs="?", default="latest")
    run_verify = sub.add_parser("verify", help="check a set's files against its manifest")
    run_verify.add_argument("set", nargs="?", default="latest")
    sub.add_parser("list", help="the sets on disk, oldest first")
    sub.add_parser("offsite-list", help="the sets in the offsite repository, oldest first")
    run_fetch = sub.add_parser("fetch", help="copy a set from the offsite repository to disk")
    run_fetch.add_argument("set", nargs="?", default="latest")
    sub.add_parser("status", help="the status file")
    args = parser.parse_args(argv)
    if args.command == "backup" and args.reason and not args.reason.isalnum():
        parser.error("--reason: letters and digits only")
    status_key = {
        "backup": "last_backup",
        "restore-test": "last_restore_test",
        "restore": "last_restore",
    }.get(args.command)
    started = now()
    try:
        settings = load_settings()
        if status_key or args.command == "fetch":
            hold_lock(settings)
        if args.command == "backup":
            result = command_backup(settings, args)
        elif args.command == "restore-test":
            result = restore_test(settings)
        elif args.command == "restore":
            result = restore(settings, args.set)
        elif args.command == "verify":
            path = find_set(settings, args.set)
            result = {"set": path.name, "files": verify(path)["files"]}
        elif args.command == "list":
            result = {"sets": [s.name for s in list_sets(settings)]}
        elif args.command == "offsite-list":
            result = {"sets": offsite_sets(settings)}
        elif args.command == "fetch":
            result = {"set": fetch(settings, args.set).name}
        else:
            result = read_status(settings)
    except (BackupError, OSError, subprocess.SubprocessError) as exc:
        journal("err", f"{args.command} FAILED: {exc}")
        if status_key:
            entry = {"ok": False, "time": iso(started), "error": str(exc)}
            try:
                record(load_settings(), status_key, entry)
            except (BackupError, OSError) as status_exc:
                journal("err", f"status file not updated: {status_exc}")
        return 1
    if status_key:
        record(settings, status_key, {"ok": True, "time": iso(started), **result})
        journal("info", f"{args.command} ok: " + json.dumps(result, sort_keys=True))
    else:
        print(json.dumps(result, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
