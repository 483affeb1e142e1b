"""Chapters and search over the sample textbook."""

from __future__ import annotations

import pytest
from apitest import ClientFactory
from fastapi.testclient import TestClient

from textbook.core.config import SAMPLE_CONTENT_DIR
from textbook.rag.content import load_chapters


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
