"""Chapters and search over the sample textbook."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from apitest import ClientFactory, auth_headers, login, make_settings
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, update

from textbook.core.config import SAMPLE_CONTENT_DIR
from textbook.models import User
from textbook.rag.content import load_chapters
from textbook.rag.store import make_store


@pytest.fixture
def api(make_client: ClientFactory, sqlite_url: str) -> TestClient:
    return make_client(database_url=sqlite_url)


def test_list_chapters_matches_the_content(api: TestClient) -> None:
    chapters = api.get("/api/v1/chapters").json()
    expected = load_chapters(SAMPLE_CONTENT_DIR)
    assert [c["slug"] for c in chapters] == [c.slug for c in expected]
    first = chapters[0]
    assert first["url"] == f"/chapters/{first['slug']}"
    assert first["sections"][0]["anchor"]


def test_read_a_section(api: TestClient) -> None:
    chapter = load_chapters(SAMPLE_CONTENT_DIR)[0]
    section = chapter.sections[1]
    response = api.get(f"/api/v1/chapters/{chapter.slug}/sections/{section.anchor}")
    assert response.status_code == 200
    body = response.json()
    assert body["text"] == section.text
    assert body["title"] == section.title
    assert body["url"] == f"/chapters/{chapter.slug}#{section.anchor}"
    assert api.get(f"/api/v1/chapters/{chapter.slug}").json()["title"] == chapter.title


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/chapters/no-such-chapter",
        "/api/v1/chapters/ros2-foundations/sections/no-such-section",
    ],
)
def test_unknown_chapter_or_section_is_404(api: TestClient, path: str) -> None:
    response = api.get(path)
    assert response.status_code == 404
    assert "not found" in response.json()["detail"]


@pytest.mark.parametrize(
    "path",
    ["/api/v1/chapters/..%2F..%2Fetc", "/api/v1/chapters/UPPER", "/api/v1/chapters/" + "a" * 101],
)
def test_hostile_slugs_are_rejected(api: TestClient, path: str) -> None:
    assert api.get(path).status_code in (404, 422)


def test_content_changes_are_picked_up(
    make_client: ClientFactory, sqlite_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    content = tmp_path_factory.mktemp("content")
    source = next(SAMPLE_CONTENT_DIR.glob("*.md"))
    (content / source.name).write_text(source.read_text())
    api = make_client(database_url=sqlite_url, content_path=content)
    assert len(api.get("/api/v1/chapters").json()) == 1
    text = (
        source.read_text()
        .replace("slug: ", "slug: copy-of-", 1)
        .replace("chapter: ", "chapter: 9", 1)
    )
    (content / "copy.md").write_text(text)
    assert len(api.get("/api/v1/chapters").json()) == 2


def test_search_ranks_passages_with_locations(api: TestClient) -> None:
    response = api.get("/api/v1/search", params={"q": "quality of service reliability"})
    assert response.status_code == 200
    results = response.json()["results"]
    assert results
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    for r in results:
        assert r["url"] == f"/chapters/{r['chapter']}#{r['anchor']}"
        assert r["text"] and r["section"] and r["chapter_title"]


def test_search_filters_by_chapter_and_module(api: TestClient) -> None:
    chapters = load_chapters(SAMPLE_CONTENT_DIR)
    target = chapters[1]
    by_chapter = api.get(
        "/api/v1/search", params={"q": "frame transform", "chapter": target.slug}
    ).json()
    assert by_chapter["results"]
    assert {r["chapter"] for r in by_chapter["results"]} == {target.slug}
    by_module = api.get(
        "/api/v1/search", params={"q": "robot", "module": target.module, "limit": 20}
    ).json()
    assert by_module["results"]
    assert {r["module"] for r in by_module["results"]} == {target.module}


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"q": ""},
        {"q": "x" * 501},
        {"q": "a\x00b"},
        {"q": "ok", "limit": 0},
        {"q": "ok", "limit": 21},
        {"q": "ok", "limit": "many"},
        {"q": "ok", "chapter": "../x"},
    ],
    ids=["missing", "empty", "long", "nul", "limit-0", "limit-21", "limit-text", "chapter"],
)
def test_search_rejects_bad_queries(api: TestClient, params: dict[str, object]) -> None:
    response = api.get("/api/v1/search", params=params)
    assert response.status_code == 422
    assert response.json()["detail"]


def test_hostile_query_strings_are_harmless(api: TestClient) -> None:
    for q in ("' OR 1=1 --", "<script>alert(1)</script>", "🤖" * 100, '{"$ne": null}'):
        assert api.get("/api/v1/search", params={"q": q}).status_code == 200


# --- a Docusaurus docs folder ------------------------------------------------------------

DOCUSAURUS_FIXTURE = Path(__file__).parents[1] / "rag" / "fixtures" / "docusaurus"


@pytest.fixture
def docs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("site") / "docs"
    shutil.copytree(DOCUSAURUS_FIXTURE, target)
    return target


def test_docusaurus_chapters_in_sidebar_order_with_category_modules(
    make_client: ClientFactory, sqlite_url: str, docs: Path
) -> None:
    api = make_client(database_url=sqlite_url, content_path=docs)
    chapters = api.get("/api/v1/chapters").json()
    assert [(c["number"], c["slug"], c["module"]) for c in chapters] == [
        (1, "index", ""),
        (2, "foundations", "Module 1: Foundations"),
        (3, "foundations-ros-nodes", "Module 1: Foundations"),
        (4, "foundations-topics", "Module 1: Foundations"),
        (5, "foundations-advanced", "Module 1: Foundations"),
        (6, "foundations-advanced-quality-of-service", "Module 1: Foundations"),
        (7, "foundations-advanced-summary", "Module 1: Foundations"),
        (8, "sim-gazebo-basics", "simulation"),
        (9, "simulation-summary", "simulation"),
        (10, "glossary", ""),
    ]
    section = api.get("/api/v1/chapters/foundations-ros-nodes/sections/executors").json()
    assert section["url"] == "/chapters/foundations-ros-nodes#executors"
    assert section["text"] == "An executor runs the callbacks of one or more nodes."


def test_chapters_follow_mdx_and_category_file_changes(
    make_client: ClientFactory, sqlite_url: str, docs: Path
) -> None:
    api = make_client(database_url=sqlite_url, content_path=docs)
    assert len(api.get("/api/v1/chapters").json()) == 10
    (docs / "02-simulation" / "sensors.mdx").write_text(
        "import X from '@site/x';\n\n# Simulated sensors\n\n<X />\n\nCameras and IMUs.\n",
        encoding="utf-8",
    )
    (docs / "02-simulation" / "_category_.json").write_text(
        '{"label": "Module 2: Simulation"}', encoding="utf-8"
    )
    chapters = {c["slug"]: c for c in api.get("/api/v1/chapters").json()}
    assert chapters["simulation-sensors"]["title"] == "Simulated sensors"
    assert chapters["simulation-summary"]["module"] == "Module 2: Simulation"
    assert len(chapters) == 11


def test_chapters_skip_an_unreadable_file_with_a_warning(
    make_client: ClientFactory, sqlite_url: str, docs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    api = make_client(database_url=sqlite_url, content_path=docs)
    latin1 = docs / "latin1.md"
    latin1.write_bytes(b"# Caf\xe9\n")
    with caplog.at_level("WARNING", logger="textbook.rag.library"):
        response = api.get("/api/v1/chapters")
    assert response.status_code == 200 and len(response.json()) == 10
    assert f"textbook content: skipped {latin1}: not UTF-8 text (byte 5)" in caplog.messages


def test_admin_ingest_of_a_docusaurus_folder_lists_what_it_skipped(
    make_client: ClientFactory, sqlite_url: str, docs: Path, tmp_path: Path
) -> None:
    store = make_store(make_settings(tmp_path / "own-store"))  # not the shared sample store
    try:
        api = make_client(database_url=sqlite_url, content_path=docs, store=store)
        headers = auth_headers(api)
        engine = create_engine(sqlite_url)
        with engine.begin() as conn:
            conn.execute(update(User).values(is_admin=True))
        engine.dispose()
        response = api.post("/api/v1/admin/ingest", headers=headers)
        assert response.status_code == 200, response.text
        report = response.json()
        assert report["chapters"] == 10
        assert report["skipped"] == [
            f"{docs / '02-simulation' / 'broken-front-matter.md'}: front matter is not valid "
            "YAML: did not find expected ',' or ']' (line 3)"
        ]
        found = api.get(
            "/api/v1/search", params={"q": "publishers", "module": "Module 1: Foundations"}
        ).json()["results"]
        assert found and found[0]["url"] == "/chapters/foundations-topics#publishers"

        empty = docs.parent / "empty"
        empty.mkdir()
        nothing = make_client(database_url=sqlite_url, content_path=empty, store=store)
        token = login(nothing)["access_token"]
        refused = nothing.post("/api/v1/admin/ingest", headers={"Authorization": f"Bearer {token}"})
        assert refused.status_code == 500
        assert "no chapter to ingest" in refused.json()["detail"]
        assert store.count() == report["chunks"]  # nothing deleted
    finally:
        store.close()
