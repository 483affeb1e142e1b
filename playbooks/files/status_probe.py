#!/usr/bin/python3
"""What playbooks/status.yml reports for one host, as one JSON object on stdout.

    status_probe.py '<json settings>'

Settings: services (unit names), release_link, health (unix socket path or host:port, and
path), certificate (PEM path), backup_status (the backup program's status file), disk (path),
limits (the thresholds of status.yml). The output names what is unhealthy under "problems"
and holds the host's table cells under "row".
Python standard library only (3.10+), so it runs on every supported host.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

UTC = timezone.utc  # noqa: UP017 (Ubuntu 22.04 has Python 3.10)


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=5)
        self.socket_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(5)
        self.sock.connect(self.socket_path)


def service_state(unit: str) -> str:
    result = subprocess.run(  # noqa: S603
        ["systemctl", "is-active", unit],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() or "unknown"


def readiness(bind: str, path: str) -> int | None:
    connection: http.client.HTTPConnection
    if bind.startswith("unix:"):
        connection = UnixConnection(bind.removeprefix("unix:"))
    else:
        connection = http.client.HTTPConnection(bind, timeout=5)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    except OSError:
        return None
    finally:
        connection.close()


def certificate_days(path: str) -> float | None:
    result = subprocess.run(  # noqa: S603
        ["openssl", "x509", "-noout", "-enddate", "-in", path],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        return None
    end = datetime.strptime(result.stdout.strip().split("=", 1)[1], "%b %d %H:%M:%S %Y %Z")
    return round((end.replace(tzinfo=UTC) - datetime.now(UTC)).total_seconds() / 86400, 1)


def age_hours(entry: dict[str, Any] | None) -> float | None:
    if not entry or "time" not in entry:
        return None
    moment = datetime.fromisoformat(str(entry["time"]).replace("Z", "+00:00"))
    return round((datetime.now(UTC) - moment).total_seconds() / 3600, 1)


def too_old(hours: float | None, limit: float) -> bool:
    return hours is None or hours > limit


def problems(report: dict[str, Any], given: dict[str, Any]) -> list[str]:
    """What is unhealthy, in words; empty when all is well."""
    limits = {name: float(value) for name, value in given.items()}
    found = [f"{unit} {state}" for unit, state in report["services"].items() if state != "active"]
    if "readiness" in report and report["readiness"] != 200:
        found.append(f"readiness {report['readiness']}")
    if "certificate_days" in report:
        days = report["certificate_days"]
        if days is None or days < limits["min_certificate_days"]:
            found.append(f"certificate days {days}")
    if "backup_age_hours" in report:
        if report["backup_last_failed"]:
            found.append("last backup failed")
        if too_old(report["backup_age_hours"], limits["max_backup_age_hours"]):
            found.append(f"last good backup: {report['backup_age_hours'] or 'none'} h ago")
        if report["restore_test_last_failed"]:
            found.append("last restore test failed")
        if too_old(report["restore_test_age_hours"], limits["max_restore_test_age_hours"]):
            found.append(
                f"last good restore test: {report['restore_test_age_hours'] or 'none'} h ago"
            )
    if report["disk_free_percent"] < limits["min_disk_free_percent"]:
        found.append(f"disk {report['disk_free_percent']}% free")
    return found


def row(report: dict[str, Any]) -> list[Any]:
    """The host's cells of status.yml's table (after the host's name)."""

    def cell(key: str) -> Any:
        value = report.get(key)
        return "-" if value is None else value

    return [
        " ".join(f"{unit}={state}" for unit, state in report["services"].items()),
        cell("release"),
        cell("readiness"),
        cell("certificate_days"),
        cell("backup_age_hours"),
        cell("restore_test_age_hours"),
        f"{report['disk_free_percent']}% ({report['disk_free_gib']} GiB)",
        ", ".join(report["problems"]) or "ok",
    ]


def main() -> int:
    settings = json.loads(sys.argv[1])
    report: dict[str, Any] = {
        "services": {unit: service_state(unit) for unit in settings.get("services", [])}
    }
    link = settings.get("release_link")
    if link and Path(link).is_symlink():
        report["release"] = os.readlink(link).rstrip("/").rsplit("/", 1)[-1]
    if settings.get("health"):
        report["readiness"] = readiness(settings["health"]["bind"], settings["health"]["path"])
    if settings.get("certificate"):
        report["certificate_days"] = certificate_days(settings["certificate"])
    if settings.get("backup_status"):
        try:
            status = json.loads(Path(settings["backup_status"]).read_text())
        except (OSError, ValueError):
            status = {}
        report["backup_age_hours"] = age_hours(status.get("last_good_backup"))
        report["backup_last_failed"] = not status.get("last_backup", {}).get("ok", True)
        report["restore_test_age_hours"] = age_hours(status.get("last_good_restore_test"))
        report["restore_test_last_failed"] = not status.get("last_restore_test", {}).get("ok", True)
        report["backup_bytes"] = status.get("total_bytes")
    usage = shutil.disk_usage(settings.get("disk", "/"))
    report["disk_free_percent"] = round(100 * usage.free / usage.total, 1)
    report["disk_free_gib"] = round(usage.free / (1 << 30), 1)
    report["problems"] = problems(report, settings["limits"])
    report["row"] = [str(cell) for cell in row(report)]
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
