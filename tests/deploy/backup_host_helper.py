"""Run ON a lab host by test_backup_restore.py (its source piped to `python3 -`), as root.

    digest            every table's row count and md5, every collection's point count and
                      payload sha256 (live database as postgres, Qdrant with the backup's key)
    drop-collections  every Qdrant collection deleted
    config KEY=VALUE  the backup settings with these changes, as JSON on stdout

Python standard library only: the host's python3.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import urllib.request
from typing import Any

CONFIG = json.load(open("/etc/textbook-backup/config.json"))  # noqa: SIM115


def psql(sql: str) -> str:
    argv = ["runuser", "-u", "postgres", "--", "psql", "-X", "-At", "-c", sql, CONFIG["database"]]
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def qdrant(method: str, path: str, body: Any = None) -> Any:
    request = urllib.request.Request(  # noqa: S310
        CONFIG["qdrant_url"] + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"api-key": CONFIG["qdrant_api_key"], "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request) as response:  # noqa: S310
        return json.load(response)["result"]


def collections() -> list[str]:
    return sorted(c["name"] for c in qdrant("GET", "/collections")["collections"])


def digest() -> dict[str, Any]:
    out: dict[str, Any] = {"rows": {}, "md5": {}, "points": {}, "payloads": {}}
    tables = psql("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
    for table in tables.split():
        out["rows"][table] = int(psql(f'SELECT count(*) FROM public."{table}"'))  # noqa: S608
        rows = "string_agg(x::text, chr(10) ORDER BY x::text)"
        out["md5"][table] = psql(
            f"SELECT md5(coalesce({rows}, '')) FROM public.\"{table}\" x"  # noqa: S608
        ).strip()
    for collection in collections():
        points: list[Any] = []
        offset = None
        while True:
            page = qdrant(
                "POST",
                f"/collections/{collection}/points/scroll",
                {"limit": 256, "offset": offset, "with_payload": True, "with_vector": False},
            )
            points += page["points"]
            offset = page.get("next_page_offset")
            if offset is None:
                break
        out["points"][collection] = len(points)
        lines = sorted(json.dumps([p["id"], p["payload"]], sort_keys=True) for p in points)
        out["payloads"][collection] = hashlib.sha256("\n".join(lines).encode()).hexdigest()
    return out


def main() -> None:
    command, *args = sys.argv[1:]
    if command == "digest":
        print(json.dumps(digest()))
    elif command == "drop-collections":
        for collection in collections():
            qdrant("DELETE", f"/collections/{collection}")
    elif command == "config":
        changes = dict(arg.split("=", 1) for arg in args)
        print(json.dumps({**CONFIG, **{k: json.loads(v) for k, v in changes.items()}}))


if __name__ == "__main__":
    main()
