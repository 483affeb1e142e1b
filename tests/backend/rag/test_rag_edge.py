"""What we rely on from Qdrant Edge (qdrant-edge-py, beta, pinned exactly): the embedded store
and the engine's own behaviour. An upgrade of the pin runs these first."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import qdrant_edge as edge

from textbook.core.config import Settings
from textbook.rag.store import StoreError, make_store
from textbook.rag.store_edge import EdgeStore, shard_path

ROOT = Path(__file__).resolve().parents[3]


def test_the_pin_is_the_one_installed_and_the_lab_standin_uses_it_too() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    standin = (ROOT / "labstandins" / "qdrant" / "requirements.txt").read_text(encoding="utf-8")
    (pinned,) = re.findall(r'"qdrant-edge-py==([^"]+)"', pyproject)
    assert f"qdrant-edge-py=={pinned}\n" in standin
    assert version("qdrant-edge-py") == pinned


# --- the embedded store ----------------------------------------------------------------------


@pytest.fixture
def store(sparse_settings: Settings) -> Iterator[EdgeStore]:
    opened = make_store(sparse_settings)
    assert isinstance(opened, EdgeStore)  # no QDRANT_URL: the embedded default is Edge
    yield opened
    opened.close()


def test_the_shard_lives_under_qdrant_path(
    store: EdgeStore, sparse_settings: Settings, chapters_dir: Path
) -> None:
    assert sparse_settings.qdrant_path is not None
    store.ingest(chapters_dir)
    assert (
        store.path
        == shard_path(sparse_settings)
        == (sparse_settings.qdrant_path / "edge" / "test_textbook")
    )
    assert (store.path / "edge_config.json").is_file()


def test_data_survives_close_and_reopen(
    store: EdgeStore, sparse_settings: Settings, chapters_dir: Path
) -> None:
    store.ingest(chapters_dir)
    ids = store.chunk_ids()
    before = store.search("What is a QoS profile", limit=3)
    store.close()

    reopened = make_store(sparse_settings)
    try:
        assert reopened.chunk_ids() == ids
        assert reopened.search("What is a QoS profile", limit=3) == before
        assert reopened.ready()[0]
        again = reopened.ingest(chapters_dir)
        assert (again.added, again.deleted) == (0, 0)
    finally:
        reopened.close()


def test_a_second_store_on_the_path_is_refused_and_the_first_keeps_working(
    store: EdgeStore, sparse_settings: Settings, chapters_dir: Path
) -> None:
    store.ingest(chapters_dir)
    with pytest.raises(StoreError, match="one process per QDRANT_PATH"):
        make_store(sparse_settings)
    # another process: the same clear refusal, and no damage to the open shard
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            (
                "import sys\n"
                "from textbook.core.config import Settings\n"
                "from textbook.rag.store import StoreError, make_store\n"
                "settings = Settings(_env_file=None, "
                f"qdrant_path={str(sparse_settings.qdrant_path)!r}, "
                "qdrant_collection='test_textbook', embedding_provider='none', "
                "llm_provider='none')\n"
                "try:\n    make_store(settings)\n"
                "except StoreError as exc:\n    print(exc); sys.exit(3)\n"
            ),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert probe.returncode == 3, probe.stderr
    assert "one process per QDRANT_PATH" in probe.stdout
    source = chapters_dir / "02-digital-twin.md"
    source.write_text(
        source.read_text(encoding="utf-8").replace(
            "Gazebo ships several physics engines.", "Gazebo ships physics engines such as DART."
        ),
        encoding="utf-8",
    )
    assert store.ingest(chapters_dir).added == 1  # writes and flushes still work
    assert "DART" in store.search("DART physics engine", limit=1)[0].text


def test_a_missing_collection_is_created_by_ingest_only(
    store: EdgeStore, chapters_dir: Path
) -> None:
    assert store.shard is None and not store.path.exists()
    assert store.count() == 0 and store.chunk_ids() == set()
    store.ingest(chapters_dir)
    assert store.shard is not None and store.count() > 0


class _CountingShard:
    """An Edge shard that counts optimize() calls (the shard type takes no attributes)."""

    def __init__(self, shard: edge.EdgeShard) -> None:
        self.shard = shard
        self.optimized = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.shard, name)

    def optimize(self) -> bool:
        self.optimized += 1
        return self.shard.optimize()


def test_an_ingest_that_changed_something_optimizes_the_shard(
    store: EdgeStore, chapters_dir: Path
) -> None:
    store.ingest(chapters_dir)
    counting = _CountingShard(store.shard)  # type: ignore[arg-type]
    store.shard = counting  # type: ignore[assignment]
    store.ingest(chapters_dir)
    assert counting.optimized == 0  # nothing changed: nothing to optimize
    source = chapters_dir / "02-digital-twin.md"
    source.write_text(source.read_text(encoding="utf-8").split("## ")[0], encoding="utf-8")
    assert store.ingest(chapters_dir).deleted > 0
    assert counting.optimized == 1


# --- the engine itself -----------------------------------------------------------------------


def _point(number: int, terms: dict[int, float], dense: list[float], chapter: str) -> edge.Point:
    return edge.Point(
        id=str(uuid.UUID(int=number)),
        vector={
            "bm25": edge.SparseVector(indices=list(terms), values=list(terms.values())),
            "dense": dense,
        },
        payload={"chapter": chapter, "n": number},
    )


@pytest.fixture
def shard(tmp_path: Path) -> Iterator[edge.EdgeShard]:
    created = edge.EdgeShard.create(
        str(tmp_path / "shard"),
        edge.EdgeConfig(
            vectors={"dense": edge.EdgeVectorParams(size=2, distance=edge.Distance.Cosine)},
            sparse_vectors={"bm25": edge.EdgeSparseVectorParams(modifier=edge.Modifier.Idf)},
        ),
    )
    created.update(
        edge.UpdateOperation.create_field_index("chapter", edge.PayloadSchemaType.Keyword)
    )
    # term 1 is in every point (IDF ~ 0), term 7 only in point 3, term 5 in points 1 and 2
    created.update(
        edge.UpdateOperation.upsert_points(
            [
                _point(1, {1: 1.0, 5: 1.0}, [1.0, 0.0], "a"),
                _point(2, {1: 1.0, 5: 1.0}, [0.0, 1.0], "b"),
                _point(3, {1: 1.0, 7: 1.0}, [0.7, 0.7], "a"),
            ]
        )
    )
    yield created
    created.close()


def _sparse_query(
    terms: dict[int, float], flt: edge.Filter | None = None, limit: int = 10
) -> edge.QueryRequest:
    return edge.QueryRequest(
        limit=limit,
        filter=flt,
        with_payload=True,
        query=edge.Query.Nearest(
            edge.SparseVector(indices=list(terms), values=list(terms.values())), using="bm25"
        ),
    )


def _numbers(points: list[edge.ScoredPoint]) -> list[int]:
    return [int(p.payload["n"]) for p in points if p.payload is not None]


def test_idf_weighs_rare_terms_up(shard: edge.EdgeShard) -> None:
    hits = shard.query(_sparse_query({1: 1.0, 7: 1.0}))
    assert _numbers(hits)[0] == 3  # the rare term decides; the common one barely counts
    common = shard.query(_sparse_query({1: 1.0}))
    assert all(hit.score < hits[0].score / 2 for hit in common)


def test_keyword_filters_and_match_any(shard: edge.EdgeShard) -> None:
    only_a = edge.Filter(must=[edge.FieldCondition(key="chapter", match=edge.MatchValue("a"))])
    assert sorted(_numbers(shard.query(_sparse_query({5: 1.0, 7: 1.0}, only_a)))) == [1, 3]
    b_or_z = edge.Filter(
        must=[edge.FieldCondition(key="chapter", match=edge.MatchAny(["b", "zzz"]))]
    )
    records, offset = shard.scroll(edge.ScrollRequest(limit=10, with_payload=True, filter=b_or_z))
    assert [r.payload["n"] for r in records if r.payload] == [2] and offset is None
    assert shard.info().payload_schema["chapter"].data_type == edge.PayloadSchemaType.Keyword


def test_rrf_fuses_dense_and_sparse_prefetches(shard: edge.EdgeShard) -> None:
    # dense ranks 2 first, sparse ranks 3 first; 3 is second on dense: fusion puts 3 on top
    request = edge.QueryRequest(
        limit=3,
        with_payload=True,
        query=edge.Fusion.Rrf(k=2),
        prefetches=[
            edge.Prefetch(limit=10, query=edge.Query.Nearest([0.1, 1.0], using="dense")),
            edge.Prefetch(
                limit=10,
                query=edge.Query.Nearest(
                    edge.SparseVector(indices=[7], values=[1.0]), using="bm25"
                ),
            ),
        ],
    )
    hits = shard.query(request)
    assert _numbers(hits)[0] == 3
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_delete_scroll_count_and_reload(shard: edge.EdgeShard, tmp_path: Path) -> None:
    shard.update(edge.UpdateOperation.delete_points([str(uuid.UUID(int=2))]))
    assert shard.count(edge.CountRequest(exact=True)) == 2
    records, _ = shard.scroll(edge.ScrollRequest(limit=1))
    assert len(records) == 1
    shard.update(edge.UpdateOperation.upsert_points([_point(1, {9: 2.0}, [1.0, 0.0], "c")]))
    shard.flush()
    shard.close()
    reloaded = edge.EdgeShard.load(str(tmp_path / "shard"))
    try:
        assert reloaded.count(edge.CountRequest(exact=True)) == 2
        (record,) = reloaded.retrieve([str(uuid.UUID(int=1))], with_payload=True, with_vector=False)
        assert record.payload == {"chapter": "c", "n": 1}  # upsert replaced the point
        assert "chapter" in reloaded.info().payload_schema
    finally:
        reloaded.close()
