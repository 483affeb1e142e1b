"""The Qdrant lab stand-in, driven over REST by qdrant-client exactly as the backend drives Qdrant.

The stand-in is started as a subprocess the way systemd starts it (``qdrant --config-path``)
on a loopback port, with a config.yaml shaped like the one roles/qdrant renders.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import UnexpectedResponse
from qdrant_standin import free_port, start, wait_ready

# plain HTTP on loopback, as on the lab network behind the private address
pytestmark = pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection")
API_KEY = "test-key-not-a-secret-0123456789"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path, subprocess.Popen[bytes]]]:
    port = free_port()
    storage = tmp_path / "storage"
    config = {
        "service": {"host": "127.0.0.1", "http_port": port, "api_key": API_KEY},
        "storage": {"storage_path": str(storage), "snapshots_path": str(tmp_path / "snap")},
        "telemetry_disabled": True,
    }
    proc = start(config, tmp_path / "config.yaml")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc)
        yield url, storage, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=10)


@pytest.fixture
def client(server: tuple[str, Path, subprocess.Popen[bytes]]) -> Iterator[QdrantClient]:
    qdrant = QdrantClient(
        url=server[0], api_key=API_KEY, prefer_grpc=False, timeout=10, check_compatibility=False
    )
    yield qdrant
    qdrant.close()


def dense(seed: int) -> list[float]:
    return [float((seed * 7 + i * 3) % 11) / 10 for i in range(4)]


DOCS = {
    1: ("ROS 2 nodes and topics", "ch1", {0: 2.0, 5: 1.0}),
    2: ("Humanoid balance control", "ch2", {1: 1.5, 7: 1.0}),
    3: ("Sim-to-real transfer", "ch3", {0: 0.5, 9: 2.0}),
    4: ("Topics, services and actions in ROS 2", "ch1", {0: 1.0, 5: 2.0, 9: 0.3}),
}


def make_collection(client: QdrantClient, name: str = "chunks") -> None:
    client.create_collection(
        name,
        vectors_config={"dense": models.VectorParams(size=4, distance=models.Distance.COSINE)},
        sparse_vectors_config={"sparse": models.SparseVectorParams(modifier=models.Modifier.IDF)},
    )
    client.create_payload_index(name, "chapter", models.PayloadSchemaType.KEYWORD)
    client.upsert(
        name,
        points=[
            models.PointStruct(
                id=pid,
                vector={
                    "dense": dense(pid),
                    "sparse": models.SparseVector(indices=list(sp), values=list(sp.values())),
                },
                payload={"title": title, "chapter": chapter},
            )
            for pid, (title, chapter, sp) in DOCS.items()
        ],
        wait=True,
    )


def test_speaks_qdrant_rest_to_qdrant_client(client: QdrantClient) -> None:
    assert not client.collection_exists("chunks")
    make_collection(client)
    assert client.collection_exists("chunks")
    info = client.get_collection("chunks")
    assert info.points_count == 4
    assert isinstance(info.config.params.vectors, dict)
    assert info.config.params.vectors["dense"].size == 4
    assert info.config.params.sparse_vectors is not None
    assert info.config.params.sparse_vectors["sparse"].modifier == models.Modifier.IDF
    assert [c.name for c in client.get_collections().collections] == ["chunks"]

    # hybrid query: dense + sparse prefetch fused with RRF, restricted by a payload filter
    hybrid = client.query_points(
        "chunks",
        prefetch=[
            models.Prefetch(query=dense(4), using="dense", limit=10),
            models.Prefetch(
                query=models.SparseVector(indices=[5], values=[1.0]), using="sparse", limit=10
            ),
        ],
        query=models.FusionQuery(fusion=models.Fusion.RRF),
        query_filter=models.Filter(
            must=[models.FieldCondition(key="chapter", match=models.MatchValue(value="ch1"))]
        ),
        limit=3,
        with_payload=True,
    )
    assert [p.id for p in hybrid.points] == [4, 1]  # only ch1; point 4 tops both rankings
    assert hybrid.points[0].payload == {"title": DOCS[4][0], "chapter": "ch1"}
    assert hybrid.points[0].score > hybrid.points[1].score

    # sparse-only query: IDF weighting ranks by the rare term (index 9 is in 2 of 4 docs)
    sparse_only = client.query_points(
        "chunks", query=models.SparseVector(indices=[9], values=[1.0]), using="sparse", limit=5
    )
    assert [p.id for p in sparse_only.points] == [3, 4]

    # dense query by named vector returns nearest first, vectors on request
    nearest = client.query_points(
        "chunks", query=dense(2), using="dense", limit=1, with_vectors=True
    )
    assert nearest.points[0].id == 2
    assert nearest.points[0].vector is not None

    got = client.retrieve("chunks", ids=[2, 3], with_payload=True)
    assert sorted(r.id for r in got) == [2, 3]

    client.delete(
        "chunks",
        points_selector=models.FilterSelector(
            filter=models.Filter(
                must=[models.FieldCondition(key="chapter", match=models.MatchValue(value="ch1"))]
            )
        ),
        wait=True,
    )
    client.delete("chunks", points_selector=models.PointIdsList(points=[3]), wait=True)
    records, next_offset = client.scroll("chunks", limit=10, with_payload=True)
    assert [r.id for r in records] == [2]
    assert next_offset is None
    assert client.count("chunks").count == 1

    assert client.delete_collection("chunks")
    assert not client.collection_exists("chunks")


def test_errors_use_qdrant_statuses(client: QdrantClient) -> None:
    with pytest.raises(UnexpectedResponse) as missing:
        client.get_collection("nope")
    assert missing.value.status_code == 404
    make_collection(client, "dup")
    with pytest.raises(UnexpectedResponse) as dup:
        make_collection(client, "dup")
    assert dup.value.status_code == 409


def test_reports_a_version_the_client_accepts(
    server: tuple[str, Path, subprocess.Popen[bytes]],
) -> None:
    from importlib.metadata import version

    from qdrant_client.common.version_check import get_server_version, is_compatible

    server_version = get_server_version(server[0], {"api-key": API_KEY}, None, 5)
    assert is_compatible(version("qdrant-client"), server_version)
    root = httpx.get(server[0]).json()
    assert "NOT Qdrant" in root["title"]  # an honest name, even on the wire


def test_api_key_is_enforced_except_on_probes(
    server: tuple[str, Path, subprocess.Popen[bytes]],
) -> None:
    url = server[0]
    assert httpx.get(f"{url}/readyz").status_code == 200
    assert httpx.get(f"{url}/healthz").status_code == 200
    assert httpx.get(f"{url}/collections").status_code == 401
    assert httpx.get(f"{url}/collections", headers={"api-key": "wrong"}).status_code == 403
    assert httpx.get(f"{url}/collections", headers={"api-key": API_KEY}).status_code == 200
    bearer = {"Authorization": f"Bearer {API_KEY}"}
    assert httpx.get(f"{url}/collections", headers=bearer).status_code == 200


def test_a_read_only_api_key_reads_and_searches_but_never_writes(tmp_path: Path) -> None:
    """Qdrant's service.read_only_api_key: the bridge of an API key rotation (rotate.yml)."""
    port, read_only = free_port(), "read-only-key-not-a-secret-012345"
    config = {
        "service": {
            "host": "127.0.0.1",
            "http_port": port,
            "api_key": API_KEY,
            "read_only_api_key": read_only,
        },
        "storage": {"storage_path": str(tmp_path / "st"), "snapshots_path": str(tmp_path / "sn")},
    }
    proc = start(config, tmp_path / "config.yaml")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc)
        full = QdrantClient(url=url, api_key=API_KEY, timeout=10, check_compatibility=False)
        make_collection(full)
        reader = QdrantClient(url=url, api_key=read_only, timeout=10, check_compatibility=False)
        assert reader.collection_exists("chunks")
        assert reader.count("chunks").count == 4
        assert reader.query_points("chunks", query=dense(1), using="dense", limit=2).points
        with pytest.raises(UnexpectedResponse) as refused:
            reader.delete_collection("chunks")
        assert refused.value.status_code == 403
        assert full.count("chunks").count == 4
        wrong = {"api-key": "not-either-key"}
        assert httpx.get(f"{url}/collections", headers=wrong).status_code == 403
        full.close()
        reader.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_data_survives_a_restart(
    server: tuple[str, Path, subprocess.Popen[bytes]], client: QdrantClient, tmp_path: Path
) -> None:
    url, _, proc = server
    make_collection(client)
    client.close()
    proc.terminate()
    assert proc.wait(timeout=10) == 0  # SIGTERM is a clean shutdown, as under systemd
    again = start(yaml.safe_load((tmp_path / "config.yaml").read_text()), tmp_path / "config.yaml")
    try:
        wait_ready(url, again)
        reopened = QdrantClient(url=url, api_key=API_KEY, timeout=10, check_compatibility=False)
        assert reopened.count("chunks").count == 4
        reopened.close()
    finally:
        again.terminate()
        again.wait(timeout=10)


def test_refuses_cluster_mode(tmp_path: Path) -> None:
    proc = start(
        {
            "service": {"host": "127.0.0.1", "http_port": free_port()},
            "storage": {"storage_path": str(tmp_path / "s")},
            "cluster": {"enabled": True, "p2p": {"port": 6335}},
        },
        tmp_path / "config.yaml",
    )
    assert proc.wait(timeout=30) == 2
    assert proc.stdout is not None
    assert b"cluster mode" in proc.stdout.read()


def test_snapshots_create_list_download_recover_and_upload(
    server: tuple[str, Path, subprocess.Popen[bytes]], client: QdrantClient, tmp_path: Path
) -> None:
    url = server[0]
    headers = {"api-key": API_KEY}
    make_collection(client)
    snapshot = client.create_snapshot("chunks")
    assert snapshot is not None and snapshot.name.endswith(".snapshot") and snapshot.size > 0
    assert [s.name for s in client.list_snapshots("chunks")] == [snapshot.name]

    download = httpx.get(f"{url}/collections/chunks/snapshots/{snapshot.name}", headers=headers)
    assert download.status_code == 200
    assert hashlib.sha256(download.content).hexdigest() == snapshot.checksum

    # recover from the file in the snapshots path undoes later changes
    client.delete("chunks", points_selector=models.PointIdsList(points=[1, 2, 3]), wait=True)
    assert client.count("chunks").count == 1
    on_disk = tmp_path / "snap" / "chunks" / snapshot.name
    assert client.recover_snapshot("chunks", location=on_disk.as_uri())
    assert client.count("chunks").count == 4
    hits = client.query_points(
        "chunks", query=models.SparseVector(indices=[9], values=[1.0]), using="sparse", limit=5
    )
    assert [p.id for p in hits.points] == [3, 4]

    # an uploaded snapshot becomes a collection of its own, indexes included
    upload = httpx.post(
        f"{url}/collections/restored/snapshots/upload",
        headers=headers,
        files={"snapshot": (snapshot.name, download.content)},
        params={"checksum": snapshot.checksum},
    )
    assert upload.status_code == 200, upload.text
    assert client.count("restored").count == 4
    info = client.get_collection("restored")
    assert info.payload_schema["chapter"].data_type == models.PayloadSchemaType.KEYWORD

    assert client.delete_snapshot("chunks", snapshot.name)
    assert client.list_snapshots("chunks") == []


def test_bad_snapshots_are_refused_and_change_nothing(
    server: tuple[str, Path, subprocess.Popen[bytes]], client: QdrantClient, tmp_path: Path
) -> None:
    url = server[0]
    headers = {"api-key": API_KEY}
    make_collection(client)
    garbage = httpx.post(
        f"{url}/collections/chunks/snapshots/upload",
        headers=headers,
        files={"snapshot": ("x.snapshot", b"not a tar archive")},
    )
    assert garbage.status_code == 400 and "snapshot" in garbage.json()["status"]["error"]
    snapshot = client.create_snapshot("chunks")
    assert snapshot is not None
    mismatch = httpx.put(
        f"{url}/collections/chunks/snapshots/recover",
        headers=headers,
        json={
            "location": (tmp_path / "snap" / "chunks" / snapshot.name).as_uri(),
            "checksum": "0" * 64,
        },
    )
    assert mismatch.status_code == 400 and "checksum" in mismatch.json()["status"]["error"]
    outside = tmp_path / "elsewhere.snapshot"
    outside.write_bytes(b"x")
    refused = httpx.put(
        f"{url}/collections/chunks/snapshots/recover",
        headers=headers,
        json={"location": outside.as_uri()},
    )
    assert refused.status_code == 404
    assert client.count("chunks").count == 4  # untouched by the three refusals
    missing = httpx.get(f"{url}/collections/chunks/snapshots/nope.snapshot", headers=headers)
    assert missing.status_code == 404


def test_an_unnamed_vector_collection_as_the_role_verifies_it(
    server: tuple[str, Path, subprocess.Popen[bytes]],
) -> None:
    url, headers = server[0], {"api-key": API_KEY}
    created = httpx.put(
        f"{url}/collections/verify",
        headers=headers,
        json={"vectors": {"size": 2, "distance": "Dot"}},
    )
    assert created.status_code == 200, created.text
    points = [
        {"id": 1, "vector": [1.0, 0.0], "payload": {"t": "a"}},
        {"id": 2, "vector": [0.0, 1.0], "payload": {"t": "b"}},
    ]
    upserted = httpx.put(
        f"{url}/collections/verify/points?wait=true", headers=headers, json={"points": points}
    )
    assert upserted.status_code == 200, upserted.text
    query = httpx.post(
        f"{url}/collections/verify/points/query",
        headers=headers,
        json={"query": [0.1, 0.9], "limit": 1, "with_payload": True, "with_vector": True},
    )
    (point,) = query.json()["result"]["points"]
    assert (point["id"], point["payload"], point["vector"]) == (2, {"t": "b"}, [0.0, 1.0])
    info = httpx.get(f"{url}/collections/verify", headers=headers).json()["result"]
    vectors = info["config"]["params"]["vectors"]
    assert (vectors["size"], vectors["distance"]) == (2, "Dot")
