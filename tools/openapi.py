"""The API's contract: docs/openapi.json is the OpenAPI document the app serves.

    python tools/openapi.py write    # regenerate it after an API change (make openapi)
    python tools/openapi.py check    # exit 1 when the app's document differs from it

tests/backend/api/test_api_contract.py fails the same way, so a change to the API shows up in
review as a diff of docs/openapi.json. A web front end generates its types from that file
(docs/api-clients.md).
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOCUMENT = ROOT / "docs" / "openapi.json"


def served() -> dict[str, Any]:
    """The document of an app on default settings (no deployment's file, no .env)."""
    from textbook.core.config import Settings
    from textbook.main import create_app

    schema: dict[str, Any] = create_app(Settings(_env_file=None)).openapi()  # type: ignore[call-arg]
    return schema


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["write", "check"])
    args = parser.parse_args()
    current = render(served())
    if args.action == "write":
        DOCUMENT.write_text(current, encoding="utf-8")
        print(f"wrote {DOCUMENT.relative_to(ROOT)}")
        return 0
    committed = DOCUMENT.read_text(encoding="utf-8") if DOCUMENT.exists() else ""
    if committed == current:
        print(f"{DOCUMENT.relative_to(ROOT)} is the app's document")
        return 0
    diff = difflib.unified_diff(
        committed.splitlines(), current.splitlines(), "docs/openapi.json", "the app", lineterm=""
    )
    print("\n".join(list(diff)[:80]))
    print("the API changed: run `make openapi` and commit docs/openapi.json", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
