"""tools/role_specs.py: each role's spec, defaults and README table agree; any drift fails."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
from script_module import load_script

ROOT = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    return load_script(ROOT / "tools" / "role_specs.py", "role_specs", register=True)


role_specs = _load()
ROLE_NAMES = sorted(p.parent.parent.name for p in ROOT.glob("roles/*/meta/argument_specs.yml"))


def test_every_role_has_a_spec() -> None:
    assert set(ROLE_NAMES) == {p.name for p in (ROOT / "roles").iterdir() if p.is_dir()}


@pytest.mark.parametrize("name", ROLE_NAMES)
def test_spec_defaults_and_readme_table_of_the_role_agree(name: str) -> None:
    assert role_specs.problems(role_specs.Role(name, ROOT / "roles" / name)) == []


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


# Each drift is made in a copy of the qdrant role and must be named by the check.
DRIFTS: dict[str, tuple[Callable[[Path], None], str]] = {
    "a default changed in defaults/main.yml only": (
        lambda r: _edit(
            r / "defaults/main.yml", "qdrant_http_port: 6333", "qdrant_http_port: 6343"
        ),
        "qdrant_http_port defaults to 6343 in defaults/main.yml but to 6333",
    ),
    "a variable missing from the spec": (
        lambda r: _edit(
            r / "defaults/main.yml",
            "qdrant_log_level: INFO",
            "qdrant_log_level: INFO\n# New.\nqdrant_new: 1",
        ),
        "qdrant_new is in defaults/main.yml but not in meta/argument_specs.yml",
    ),
    "a spec option without a default variable": (
        lambda r: _edit(r / "defaults/main.yml", "# gRPC port.\nqdrant_grpc_port: 6334\n", ""),
        "qdrant_grpc_port is in meta/argument_specs.yml but not in defaults/main.yml",
    ),
    "a default of another type than the spec's": (
        lambda r: _edit(
            r / "defaults/main.yml", "qdrant_http_port: 6333", 'qdrant_http_port: "6333"'
        ),
        "qdrant_http_port defaults to '6333', which is not of its spec type int",
    ),
    "a default outside the spec's choices": (
        lambda r: _edit(
            r / "defaults/main.yml", "qdrant_log_level: INFO", "qdrant_log_level: LOUD"
        ),
        "qdrant_log_level defaults to 'LOUD', not one of its spec choices",
    ),
    "a spec default for a computed variable": (
        lambda r: _edit(
            r / "meta/argument_specs.yml",
            "      qdrant_storage_path:\n        type: path\n",
            "      qdrant_storage_path:\n        type: path\n"
            "        default: /var/lib/qdrant/storage\n",
        ),
        "qdrant_storage_path is computed in defaults/main.yml",
    ),
    "a default without its comment": (
        lambda r: _edit(r / "defaults/main.yml", "# REST port.\n", ""),
        "qdrant_http_port has no comment line above it",
    ),
    "a README table edited by hand": (
        lambda r: _edit(r / "README.md", "| REST port. |", "| HTTP port. |"),
        "roles/qdrant/README.md: the variable table differs",
    ),
    "a README without the table's markers": (
        lambda r: _edit(r / "README.md", role_specs.END, ""),
        "roles/qdrant/README.md has no variable table between the markers",
    ),
}


@pytest.fixture
def qdrant_copy(tmp_path: Path) -> Path:
    role = tmp_path / "roles" / "qdrant"
    shutil.copytree(ROOT / "roles" / "qdrant", role, ignore=shutil.ignore_patterns("molecule"))
    return role


@pytest.mark.parametrize("drift", list(DRIFTS))
def test_the_check_names_each_kind_of_drift(
    drift: str, qdrant_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make, message = DRIFTS[drift]
    assert role_specs.main(["check", "--root", str(qdrant_copy.parent.parent)]) == 0
    make(qdrant_copy)
    assert role_specs.main(["check", "--root", str(qdrant_copy.parent.parent)]) == 1
    assert message in capsys.readouterr().err


def test_write_regenerates_the_readme_table_from_the_spec(qdrant_copy: Path) -> None:
    _edit(
        qdrant_copy / "meta/argument_specs.yml",
        "description: REST port.",
        "description: REST port of the API.",
    )
    root = str(qdrant_copy.parent.parent)
    assert role_specs.main(["check", "--root", root]) == 1
    assert role_specs.main(["write", "--root", root]) == 0
    assert (
        "| `qdrant_http_port` | int | `6333` | REST port of the API. |"
        in (qdrant_copy / "README.md").read_text()
    )
    assert role_specs.main(["check", "--root", root]) == 0
