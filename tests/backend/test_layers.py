"""Layers point one way: `core/` (config, db, security, logging, shared errors) imports nothing
from `rag/`, `llm` or `api/`; `rag/` imports nothing from `api/` (`main.py` wires them).
`client/` (the API's Python client and the CLI's client commands) stands apart: it imports
nothing of the server, and the server nothing of it; only `cli.py` uses both.
The import graph is grimp's, type-checking-only imports included."""

from __future__ import annotations

import grimp
import pytest

SERVER = (
    "textbook.core",
    "textbook.rag",
    "textbook.llm",
    "textbook.api",
    "textbook.models",
    "textbook.main",
    "textbook.migrations",
    "textbook.gunicorn_conf",
    "textbook.cli",
)
FORBIDDEN = {
    "textbook.core": ("textbook.rag", "textbook.llm", "textbook.api", "textbook.client"),
    "textbook.rag": ("textbook.api", "textbook.client"),
    "textbook.api": ("textbook.client",),
    "textbook.client": SERVER,
}


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("textbook", cache_dir=None)


def upward_imports(graph: grimp.ImportGraph, layer: str) -> set[tuple[str, str]]:
    found = set()
    for module in graph.find_descendants(layer):
        for imported in graph.find_modules_directly_imported_by(module):
            if any(imported == f or imported.startswith(f + ".") for f in FORBIDDEN[layer]):
                found.add((module, imported))
    return found


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_a_layer_imports_nothing_from_the_layers_above_it(
    graph: grimp.ImportGraph, layer: str
) -> None:
    assert upward_imports(graph, layer) == set()


def test_the_check_sees_an_upward_import() -> None:
    """The test above would fail: core/middleware.py's imports are in the graph, and an
    import of api/ added to it is reported."""
    changed = grimp.build_graph("textbook", cache_dir=None)  # its own: this one is changed
    assert "textbook.core.logging" in changed.find_modules_directly_imported_by(
        "textbook.core.middleware"
    )
    changed.add_import(importer="textbook.core.middleware", imported="textbook.api.deps")
    assert ("textbook.core.middleware", "textbook.api.deps") in upward_imports(
        changed, "textbook.core"
    )


def test_the_check_sees_the_client_importing_the_server() -> None:
    changed = grimp.build_graph("textbook", cache_dir=None)
    assert upward_imports(changed, "textbook.client") == set()
    changed.add_import(importer="textbook.client.models", imported="textbook.api.schemas")
    assert ("textbook.client.models", "textbook.api.schemas") in upward_imports(
        changed, "textbook.client"
    )
