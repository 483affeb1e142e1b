"""The roles follow one set of conventions (documented in docs/deploy.md, "Role conventions")."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLES = sorted(p.name for p in (ROOT / "roles").iterdir() if (p / "tasks" / "main.yml").exists())
# Facts a role sets for the roles after it (documented in its README), not internal state.
OUTPUT_FACTS = {"letsencrypt_certificate", "letsencrypt_certificate_key"}
# A task name states what the task makes true, not a command ("Install nginx").
IMPERATIVES = {
    "add", "build", "check", "configure", "copy", "create", "download", "enable", "ensure",
    "get", "install", "make", "obtain", "remove", "render", "renew", "restart", "run", "set",
    "start", "stop", "update", "write",
}  # fmt: skip


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _tasks(items: list[dict[str, Any]] | None) -> Iterator[dict[str, Any]]:
    for task in items or []:
        yield task
        for key in ("block", "rescue", "always"):
            yield from _tasks(task.get(key))


def _task_files(role: str) -> Iterator[tuple[Path, dict[str, Any]]]:
    for folder in ("tasks", "handlers"):
        for path in sorted((ROOT / "roles" / role / folder).glob("*.yml")):
            for task in _tasks(_load(path)):
                yield path, task


@pytest.mark.parametrize("role", ROLES)
def test_registers_and_facts_are_internal_names_of_the_role(role: str) -> None:
    wrong = []
    for path, task in _task_files(role):
        names = [task["register"]] if "register" in task else []
        names += [k for k in task.get("ansible.builtin.set_fact", {}) if k != "cacheable"]
        names += list(task.get("vars", {}))
        wrong += [
            f"{path.name}: {n}"
            for n in names
            if not n.startswith(f"__{role}_") and n not in OUTPUT_FACTS
        ]
    assert wrong == [], f"internal names are __{role}_*"


@pytest.mark.parametrize("role", ROLES)
def test_registers_and_facts_never_shadow_a_role_variable(role: str) -> None:
    # A register wins over vars/ and defaults/: one named like a path variable replaces the path.
    folder = ROOT / "roles" / role
    files = [folder / "defaults" / "main.yml", *sorted((folder / "vars").glob("*.yml"))]
    variables = {n for p in files if p.exists() for n in _load(p) or {}}
    shadowing = []
    for path, task in _task_files(role):
        names = [task["register"]] if "register" in task else []
        names += list(task.get("ansible.builtin.set_fact", {}))
        shadowing += [f"{path.name}: {n}" for n in names if n in variables]
    assert shadowing == []


@pytest.mark.parametrize("role", ROLES)
def test_variables_are_public_inputs_in_defaults_and_internal_in_vars(role: str) -> None:
    folder = ROOT / "roles" / role
    defaults = _load(folder / "defaults" / "main.yml") if (folder / "defaults").exists() else {}
    assert [n for n in defaults or {} if not n.startswith(f"{role}_")] == []
    internal = [n for p in sorted((folder / "vars").glob("*.yml")) for n in _load(p) or {}]
    assert [n for n in internal if not n.startswith(f"__{role}_")] == []


@pytest.mark.parametrize("role", ROLES)
def test_tags_are_the_role_or_one_of_its_phases(role: str) -> None:
    pattern = re.compile(rf"^(always|{role}|{role}_[a-z]+(_[a-z]+)*)$")
    wrong = []
    for path, task in _task_files(role):
        tags = list(task.get("tags", []))
        for key in ("ansible.builtin.include_tasks", "ansible.builtin.import_tasks"):
            if isinstance(task.get(key), dict):
                tags += task[key].get("apply", {}).get("tags", [])
        wrong += [f"{path.name}: {t}" for t in tags if not pattern.match(t)]
    assert wrong == []


@pytest.mark.parametrize("role", ROLES)
def test_task_names_state_an_outcome(role: str) -> None:
    wrong = []
    for folder in ("tasks",):
        for path in sorted((ROOT / "roles" / role / folder).glob("*.yml")):
            for task in _tasks(_load(path)):
                first = str(task.get("name", "")).split(" ", 1)[0].lower()
                if first in IMPERATIVES:
                    wrong.append(f"{path.name}: {task['name']}")
    assert wrong == []


@pytest.mark.parametrize("role", ROLES)
def test_distribution_vars_are_loaded_first_found_in_one_way(role: str) -> None:
    folder = ROOT / "roles" / role
    distro_files = [p for p in (folder / "vars").glob("*.yml") if p.name != "main.yml"]
    first = _load(folder / "tasks" / "main.yml")[0]
    if not distro_files:
        assert "ansible.builtin.include_vars" not in first
        return
    lookup = f"{{{{ lookup('ansible.builtin.first_found', __{role}_vars_files) }}}}"
    assert first == {
        "name": "Distribution variables are loaded",
        "ansible.builtin.include_vars": lookup,
        "vars": {
            f"__{role}_vars_files": {
                "files": [
                    "{{ ansible_facts['distribution'] }}-"
                    "{{ ansible_facts['distribution_major_version'] }}.yml",
                    "{{ ansible_facts['distribution'] }}.yml",
                    "{{ ansible_facts['os_family'] }}.yml",
                ],
                "paths": ["{{ role_path }}/vars"],
            }
        },
        "tags": ["always"],
    }


@pytest.mark.parametrize("role", ROLES)
def test_every_template_carries_the_managed_header(role: str) -> None:
    header = re.compile(
        rf"^(#|//) Managed by Ansible \(role {role}\): local changes are overwritten\.$"
    )
    wrong = []
    for path in sorted((ROOT / "roles" / role / "templates").glob("*.j2")):
        if path.name.startswith("_"):  # a partial, included into a template that has the header
            continue
        lines = path.read_text(encoding="utf-8").splitlines()
        lines = lines[1:] if lines and lines[0].startswith("#!") else lines
        if not lines or not header.match(lines[0]):
            wrong.append(path.name)
    assert wrong == []


def test_the_readme_role_table_links_each_role_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert [r for r in ROLES if f"](roles/{r}/README.md)" not in readme] == []
