"""The store on both engines (Qdrant Edge embedded, a Qdrant server over REST), BM25 only:
idempotent ingest, deletion, filters, readiness."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from rag_helpers import keyword_indexes, spy_calls

from textbook.core.config import Settings
from textbook.rag import store_server
from textbook.rag.chunking import chunk_chapters
from textbook.rag.content import load_chapters
from textbook.rag.store import INDEXED_FIELDS, ChunkStore, Layout, StoreError, make_store
from textbook.rag.store_server import ServerStore

MODULE_2 = "Module 2: The Digital Twin"

# the server engine talks plain HTTP to the stand-in on loopback
pytestmark = pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection")


@pytest.fixture
def store(engine_settings: Settings) -> Iterator[ChunkStore]:
    vector_store = make_store(engine_settings)
    yield vector_store
    vector_store.close()


@pytest.fixture
def ingested(store: ChunkStore, chapters_dir: Path) -> ChunkStore:
    store.ingest(chapters_dir)
    return store


def test_ready_reports_missing_then_ready(store: ChunkStore, chapters_dir: Path) -> None:
    ok, detail = store.ready()
    assert not ok and "missing" in detail
    with pytest.raises(StoreError, match="missing"):
        store.search("qos", limit=3)
    store.ingest(chapters_dir)
    ok, detail = store.ready()
    assert ok and "bm25" in detail, detail


def test_collection_has_bm25_with_idf_and_no_dense(ingested: ChunkStore) -> None:
    # no embeddings configured: no dense vector
    assert ingested.layout() == Layout(sparse_ok=True, dense_size=None)
    assert not ingested.hybrid


def test_ingest_twice_writes_nothing_the_second_time(store: ChunkStore, chapters_dir: Path) -> None:
    expected = len(chunk_chapters(load_chapters(chapters_dir)))
    messages: list[str] = []
    first = store.ingest(chapters_dir, progress=messages.append)
    assert (first.chapters, first.chunks, first.added, first.unchanged, first.deleted) == (
        2,
        expected,
        expected,
        0,
        0,
    )
    assert len(messages) == 2 and messages[0].startswith("ros2-basics: ")
    assert re.search(r"\d+ chunks, \d+ added, 0 unchanged, 0 deleted", messages[0])
    ids = store.chunk_ids()

    upserts = spy_calls(store, "_upsert")
    second = store.ingest(chapters_dir)
    assert (second.added, second.unchanged, second.deleted) == (0, expected, 0)
    assert upserts == []
    assert store.count() == expected and store.chunk_ids() == ids


def test_removed_section_is_deleted_on_reingest(ingested: ChunkStore, chapters_dir: Path) -> None:
    source = chapters_dir / "01-nervous-system.md"
    before = {
        c.id: c.anchor
        for c in chunk_chapters(load_chapters(chapters_dir), index_key=ingested.sparse.signature)
    }
    services = {i for i, anchor in before.items() if anchor == "services"}
    assert services
    text = source.read_text(encoding="utf-8")
    start = text.index("## Services")
    end = text.index("## Nodes and Topics", start)
    source.write_text(text[:start] + text[end:], encoding="utf-8")

    report = ingested.ingest(chapters_dir)
    assert (report.added, report.deleted) == (0, len(services))
    stored = ingested.chunk_ids()
    assert stored == set(before) - services
    assert all(
        p.anchor != "services" for p in ingested.search("service request response", limit=10)
    )


def test_edited_section_replaces_its_chunk(ingested: ChunkStore, chapters_dir: Path) -> None:
    source = chapters_dir / "02-digital-twin.md"
    text = source.read_text(encoding="utf-8")
    source.write_text(
        text.replace(
            "Gazebo ships several physics engines.",
            "Gazebo ships several physics engines, such as DART.",
        ),
        encoding="utf-8",
    )
    report = ingested.ingest(chapters_dir)
    assert (report.added, report.deleted) == (1, 1)
    assert "DART" in ingested.search("DART physics engine", limit=1)[0].text


def test_ingesting_one_chapter_leaves_the_others(ingested: ChunkStore, chapters_dir: Path) -> None:
    total = ingested.count()
    report = ingested.ingest(chapters_dir / "02-digital-twin.md")
    assert (report.chapters, report.added, report.deleted) == (1, 0, 0)
    assert ingested.count() == total


def test_qos_question_finds_the_qos_section(ingested: ChunkStore) -> None:
    passages = ingested.search("What is a QoS profile", limit=3)
    assert passages[0].anchor == "quality-of-service"
    top = passages[0]
    assert (top.chapter, top.chapter_title, top.section, top.module) == (
        "ros2-basics",
        "ROS 2 Basics",
        "Quality of Service",
        "Module 1: The Robotic Nervous System",
    )
    assert "QoS profile is a set of policies" in top.text
    assert top.score > 0 and [p.score for p in passages] == sorted(
        (p.score for p in passages), reverse=True
    )


def test_module_and_chapter_filters_restrict_results(ingested: ChunkStore) -> None:
    query = "ROS 2 sensors messages simulation"
    unfiltered = {p.chapter for p in ingested.search(query, limit=10)}
    assert unfiltered == {"ros2-basics", "gazebo-simulation"}
    by_module = ingested.search(query, limit=10, module=MODULE_2)
    assert by_module and {p.module for p in by_module} == {MODULE_2}
    by_chapter = ingested.search(query, limit=10, chapter="ros2-basics")
    assert by_chapter and {p.chapter for p in by_chapter} == {"ros2-basics"}
    assert ingested.search(query, limit=10, module=MODULE_2, chapter="ros2-basics") == []


def test_stopword_only_query_returns_nothing(ingested: ChunkStore) -> None:
    assert ingested.search("what is the", limit=5) == []


def test_payload_indexes_on_module_and_chapter(store: ChunkStore) -> None:
    store.ensure_collection()
    assert keyword_indexes(store) == set(INDEXED_FIELDS)


def test_unreadable_chapter_is_skipped_and_the_rest_ingested(
    store: ChunkStore, chapters_dir: Path
) -> None:
    broken = chapters_dir / "03-broken.md"
    broken.write_text("---\ntitle: [unclosed\n---\n# Broken\n", encoding="utf-8")
    report = store.ingest(chapters_dir)
    assert report.chapters == 2 and report.added == report.chunks > 0
    assert len(report.skipped) == 1 and report.skipped[0].startswith(f"{broken}: ")
    assert store.count() == report.chunks


def test_removed_file_is_deleted_on_reingest(ingested: ChunkStore, chapters_dir: Path) -> None:
    kept = {
        c.id
        for c in chunk_chapters(
            load_chapters(chapters_dir / "01-nervous-system.md"),
            index_key=ingested.sparse.signature,
        )
    }
    removed = ingested.count() - len(kept)
    messages: list[str] = []
    (chapters_dir / "02-digital-twin.md").unlink()
    report = ingested.ingest(chapters_dir, progress=messages.append)
    assert (report.chapters, report.added, report.unchanged, report.deleted) == (
        1,
        0,
        len(kept),
        removed,
    )
    assert ingested.chunk_ids() == kept
    assert f"gazebo-simulation: no longer in {chapters_dir}, {removed} chunks deleted" in messages
    assert ingested.search("Gazebo physics engines", limit=5, module=MODULE_2) == []


def test_removed_file_is_kept_while_another_file_is_skipped(
    ingested: ChunkStore, chapters_dir: Path
) -> None:
    """The skipped file may be the removed chapter under a new name: delete nothing."""
    total = ingested.count()
    (chapters_dir / "02-digital-twin.md").unlink()
    (chapters_dir / "03-new.md").write_bytes(b"# Caf\xe9\n")
    report = ingested.ingest(chapters_dir)
    assert (report.chapters, report.deleted) == (1, 0) and len(report.skipped) == 1
    assert ingested.count() == total


def test_folder_without_chapters_changes_nothing(ingested: ChunkStore, tmp_path: Path) -> None:
    total = ingested.count()
    (tmp_path / "empty").mkdir()
    report = ingested.ingest(tmp_path / "empty")
    assert (report.chapters, report.chunks, report.deleted) == (0, 0, 0)
    assert ingested.count() == total


def test_docusaurus_folder_is_searchable_by_category_module(
    store: ChunkStore, docs_dir: Path
) -> None:
    report = store.ingest(docs_dir)
    assert report.chapters == 10 and len(report.skipped) == 1
    hits = store.search("exactly one message type", limit=3)
    assert (hits[0].chapter, hits[0].anchor, hits[0].module) == (
        "foundations-topics",
        "topics",
        "Module 1: Foundations",
    )
    in_module = store.search("summary", limit=10, module="simulation")
    assert {h.chapter for h in in_module} == {"simulation-summary"}
    assert all(
        "import " not in h.text
        for h in store.search("Tabs TabItem", limit=10)
        if "```" not in h.text
    )


def test_unreachable_server_is_not_ready(
    sparse_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Server mode against a closed loopback port: ready() says so, search raises StoreError."""
    monkeypatch.setattr(store_server, "CONNECT_RETRIES", 0)  # no restart to wait for here
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store = make_store(
        sparse_settings.model_copy(
            update={"qdrant_url": f"http://127.0.0.1:{port}", "qdrant_path": None}
        )
    )
    try:
        assert isinstance(store, ServerStore)
        ok, detail = store.ready()
        assert not ok and detail.startswith("qdrant unreachable")
        with pytest.raises(StoreError, match="qdrant unreachable"):
            store.search("qos", limit=3)
    finally:
        store.close()


def _many_chapters(target: Path, count: int) -> Path:
    target.mkdir()
    for n in range(count):
        (target / f"{n:02d}.md").write_text(
            f"---\nmodule: Extra\nchapter: {10 + n}\ntitle: Extra {n}\nslug: extra-{n}\n---\n"
            f"# Extra {n}\n\n## Topic {n}\n\nExtra chapter {n} explains actuator number {n}.\n\n"
            f"## Wiring\n\nCables of chapter {n}.\n",
            encoding="utf-8",
        )
    return target


def test_many_chapters_reingest_and_replace_the_book(ingested: ChunkStore, tmp_path: Path) -> None:
    """Ten chapters at once; a folder is the whole book: the chapters of the one ingested
    before are deleted."""
    count = 10
    fixture_ids = ingested.chunk_ids()
    extra = _many_chapters(tmp_path / "extra", count)
    first = ingested.ingest(extra)
    assert (first.chapters, first.added, first.deleted) == (count, 2 * count, len(fixture_ids))
    assert not fixture_ids & ingested.chunk_ids()
    again = ingested.ingest(extra)
    assert (again.added, again.unchanged, again.deleted) == (0, 2 * count, 0)
    source = extra / "03.md"
    source.write_text(source.read_text(encoding="utf-8").split("## Wiring")[0], encoding="utf-8")
    third = ingested.ingest(extra)
    assert (third.added, third.deleted) == (0, 1)
    assert ingested.count() == 2 * count - 1


def test_another_sparse_encoding_reindexes_every_chunk(
    ingested: ChunkStore, engine_settings: Settings, chapters_dir: Path
) -> None:
    before = ingested.chunk_ids()
    ingested.close()
    switched = make_store(engine_settings.model_copy(update={"sparse_stemming": False}))
    try:
        report = switched.ingest(chapters_dir)
        assert (report.added, report.deleted) == (len(before), len(before))
        assert not switched.chunk_ids() & before
        assert switched.search("quality of service", limit=1)
    finally:
        switched.close()
