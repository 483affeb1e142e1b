#!/usr/bin/env python3
"""Build the Qdrant LAB STAND-IN release artifact (NOT Qdrant) and print its sha256.

The tarball has the layout of Qdrant's release tarball (an executable named ``qdrant`` at the
top) so roles/qdrant installs it through the same path as the real binary, checksum and all.
Its name says what it is: ``qdrant-labstandin-<version>.tar.gz``. The build is reproducible
(fixed mtimes, owners and gzip header), so the same sources always give the same sha256.

Usage: build_artifact.py OUTPUT_DIR  ->  prints "<sha256>  <path>" and writes <path>.sha256
"""

from __future__ import annotations

import gzip
import hashlib
import io
import sys
import tarfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
NOTICE = b"""This is the Qdrant LAB STAND-IN, not Qdrant.

`qdrant` here is a Python program (labstandins/qdrant/qdrant_labstandin.py in the textbook
repository) that serves a subset of Qdrant's REST API on top of Qdrant Edge (qdrant-edge-py,
Qdrant's engine as an in-process library). It needs /opt/qdrant-labstandin/venv (roles/qdrant
creates it when qdrant_labstandin is true).
Production installs Qdrant's real release binary, verified by its sha256.
"""


def version() -> str:
    for line in (HERE / "requirements.txt").read_text().splitlines():
        if line.startswith("qdrant-client=="):
            return line.split("==", 1)[1].strip()
    raise SystemExit("requirements.txt pins no qdrant-client version")


def add(tar: tarfile.TarFile, name: str, data: bytes, mode: int) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    tar.addfile(info, io.BytesIO(data))


def build(output_dir: Path) -> tuple[Path, str]:
    output_dir.mkdir(parents=True, exist_ok=True)
    target = output_dir / f"qdrant-labstandin-{version()}.tar.gz"
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        add(tar, "qdrant", (HERE / "qdrant_labstandin.py").read_bytes(), 0o755)
        add(tar, "QDRANT-LABSTANDIN.txt", NOTICE, 0o644)
    packed = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=packed, mtime=0) as gz:
        gz.write(raw.getvalue())
    data = packed.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    if not target.exists() or target.read_bytes() != data:
        target.write_bytes(data)
    Path(f"{target}.sha256").write_text(f"{digest}  {target.name}\n")
    return target, digest


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    target, digest = build(Path(sys.argv[1]))
    print(f"{digest}  {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
