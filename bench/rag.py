"""Retrieval benchmark: the embedded default (Qdrant Edge) at 10k and 100k chunks, and the
same engine work on qdrant-client's local mode (the embedded default before Qdrant Edge).

The corpus is the sample textbook scaled up: each chapter is copied N times with its own
slug, chapter number and module, and a share of its prose words varied per copy, so the
copies are distinct chunks with a growing vocabulary rather than duplicates. BM25 only (the
lab has no embeddings provider). For each size:

* store: `textbook ingest`'s path (parse, chunk, BM25 vectors, upsert) timed as throughput,
  an unchanged re-ingest, and `store.search` p50/p95 inside the process (what a request
  spends in the store), unfiltered and with a chapter filter;
* api: `textbook serve` (gunicorn, one worker) over that store, `GET /api/v1/search` timed by
  a keep-alive client on loopback, one request at a time, and the worker's resident memory;
* engines: the same stored points upserted into a fresh Qdrant Edge shard and into
  qdrant-client's local mode, and the same query vectors searched on each, each engine in a
  process of its own so its memory is its own. Local mode is brute force in Python: it runs
  at most --local-searches queries, and above --local-max-chunks (default 20k: at 100k it
  takes minutes to upsert and seconds a query here) the side-by-side is skipped.
* the API is timed in rounds with GET /health (no I/O) interleaved: the machine is shared,
  and /health is the floor a request pays before the search.

    python bench/rag.py [--sizes 10000,100000] [--searches 300] [--api-requests 300]
                        [--local-max-chunks 10000] [--local-searches 30]
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import pickle
import random
import re
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from _report import latency_summary, stopwatch, write_report

from textbook.client import NO_RETRY, TextbookClient, TransportError
from textbook.core.config import SAMPLE_CONTENT_DIR, Settings
from textbook.rag.answer import compose_extractive_answer
from textbook.rag.chunking import chunk_chapters
from textbook.rag.content import iter_markdown_lines, load_chapters
from textbook.rag.sparse import SparseEncoder
from textbook.rag.store import make_store
from textbook.rag.store_edge import EdgeStore

COLLECTION = "bench_textbook"
ENCODER = SparseEncoder()  # the embedded default's encoding
BOOT_TIMEOUT_SECONDS = 120
API_ROUNDS = 5


QUERIES = [
    "What is a QoS profile?",
    "How do ROS 2 nodes discover each other?",
    "When should I use an action instead of a service?",
    "How does tf2 transform a point between frames?",
    "What does a launch file do?",
    "How is a URDF joint described?",
    "What is the Jacobian used for?",
    "How does inverse kinematics handle singularities?",
    "How does a physics simulator handle contact and friction?",
    "What is a digital twin?",
    "How does a stereo camera measure depth?",
    "Why does an IMU drift?",
    "How does a Kalman filter fuse IMU and odometry?",
    "What is loop closure in SLAM?",
    "What is the zero moment point?",
    "How does a humanoid keep its balance while walking?",
    "How is a grasp planned?",
    "What is domain randomization?",
    "How do robots learn from reward?",
    "What is a vision-language-action model?",
    "How should a robot stop safely near people?",
    "How does a robot understand spoken commands?",
    "What simulation time step should a legged robot use?",
    "Which sensors does a humanoid need?",
]
VARIANT_SHARE = 0.15
_WORD_RE = re.compile(r"\b([A-Za-z]{5,})\b")
_FRONT_RE = re.compile(r"^---\n(.*?)\n---\n", re.DOTALL)


def _vary_prose(body: str, rng: random.Random, copy: int) -> str:
    """Replace a share of the long prose words with per-copy variants; code stays as is."""
    lines = []
    for line in iter_markdown_lines(body):
        text = line.text
        if not line.in_code and not text.lstrip().startswith("#"):
            text = _WORD_RE.sub(
                lambda m: (
                    f"{m.group(1)}{copy % 97}v{rng.randint(0, 40)}"
                    if rng.random() < VARIANT_SHARE
                    else m.group(1)
                ),
                text,
            )
        lines.append(text)
    return "\n".join(lines) + "\n"


def _copy_front_matter(front: str, copy: int) -> str:
    """The front matter of copy number `copy`: own slug, chapter number and module."""
    front = re.sub(r"^slug:\s*(\S+)", rf"slug: \1-copy{copy}", front, flags=re.M)
    front = re.sub(
        r"^chapter:\s*(\d+)",
        lambda m: f"chapter: {copy * 100 + int(m.group(1))}",
        front,
        flags=re.M,
    )
    return re.sub(r'^module:\s*"?(.*?)"?\s*$', rf'module: "\1 (copy {copy})"', front, flags=re.M)


def build_corpus(target: Path, target_chunks: int) -> int:
    """Write enough varied chapter copies under `target` for ~target_chunks chunks."""
    sources = sorted(SAMPLE_CONTENT_DIR.glob("*.md"))
    per_copy = len(chunk_chapters(load_chapters(SAMPLE_CONTENT_DIR)))
    copies = max(1, round(target_chunks / per_copy))
    rng = random.Random(20240601)  # noqa: S311 - reproducible corpus, not security
    for copy in range(copies):
        for source in sources:
            text = source.read_text(encoding="utf-8")
            match = _FRONT_RE.match(text)
            if match is None:
                raise SystemExit(f"{source}: no front matter")
            front = _copy_front_matter(match.group(1), copy)
            body = _vary_prose(text[match.end() :], rng, copy)
            (target / f"{copy:03d}-{source.name}").write_text(
                f"---\n{front}\n---\n{body}", encoding="utf-8"
            )
    return copies


def rss_mb(pid: int | str = "self") -> dict[str, float]:
    """Resident memory now and at its peak (VmRSS, VmHWM) of a process, in MiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = round(int(value.split()[0]) / 1024, 1)
    return {"rss_mb": fields["VmRSS"], "peak_rss_mb": fields["VmHWM"]}


def settings_for(storage: Path) -> Settings:
    return Settings(
        _env_file=None,
        qdrant_path=storage,
        qdrant_collection=COLLECTION,
        embedding_provider="none",
        llm_provider="none",
    )


def measure_store(
    corpus: Path, storage: Path, searches: int, filter_chapter: str, reingest: bool
) -> tuple[dict[str, Any], list[Any]]:
    """Ingest and search through the store; also return the stored points for `engines`."""
    store = make_store(settings_for(storage))
    assert isinstance(store, EdgeStore)
    try:
        first = store.ingest(corpus)
        results: dict[str, Any] = {
            "chunks": first.chunks,
            "ingest": {
                "seconds": round(first.seconds, 2),
                "chunks_per_second": round(first.chunks / first.seconds, 1),
            },
        }
        if reingest:
            second = store.ingest(corpus)  # unchanged content: the idempotency scan alone
            results["reingest_unchanged"] = {
                "seconds": round(second.seconds, 2),
                "added": second.added,
            }
        for query in QUERIES[:5]:  # warm-up
            store.search(query, limit=5)
        plain: list[float] = []
        filtered: list[float] = []
        for i in range(searches):
            query = QUERIES[i % len(QUERIES)]
            with stopwatch() as elapsed:
                store.search(query, limit=5)
            plain.append(elapsed[0])
            with stopwatch() as elapsed:
                store.search(query, limit=5, chapter=filter_chapter)
            filtered.append(elapsed[0])
        passages = {q: store.search(q, limit=5) for q in QUERIES}
        answers: list[float] = []
        for i in range(200):
            query = QUERIES[i % len(QUERIES)]
            with stopwatch() as elapsed:
                compose_extractive_answer(query, passages[query])
            answers.append(elapsed[0])
        results["search"] = {"limit": 5, **latency_summary(plain)}
        results["search_chapter_filter"] = {"limit": 5, **latency_summary(filtered)}
        results["extractive_answer"] = {"passages": 5, **latency_summary(answers)}
        points = stored_points(store)
    finally:
        store.close()
    return results, points


def stored_points(store: EdgeStore) -> list[Any]:
    """(id, indices, values, payload) of every stored point, for the engine comparison."""
    import qdrant_edge as edge

    assert store.shard is not None
    points: list[Any] = []
    offset: Any = None
    while True:
        records, offset = store.shard.scroll(
            edge.ScrollRequest(offset=offset, limit=4096, with_payload=True, with_vector=["bm25"])
        )
        for record in records:
            vectors: Any = record.vector
            sparse = vectors["bm25"]
            points.append(
                (str(record.id), list(sparse.indices), list(sparse.values), record.payload)
            )
        if offset is None:
            return points


# --- through the HTTP API -------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def worker_pid(master: int) -> int:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return int(children[0])


def measure_api(data_dir: Path, storage: Path, requests: int) -> dict[str, Any]:
    """`textbook serve` over the ingested store; GET /api/v1/search one request at a time."""
    port = free_port()
    env = {
        **os.environ,
        "DATA_DIR": str(data_dir),
        "QDRANT_PATH": str(storage),
        "QDRANT_COLLECTION": COLLECTION,
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "LLM_PROVIDER": "none",
        "EMBEDDING_PROVIDER": "none",
        "LOG_LEVEL": "WARNING",
        "RATE_LIMIT_PER_IP": "1000000/minute",
    }  # one client sends every request
    env.pop("QDRANT_URL", None)
    subprocess.run(
        [sys.executable, "-m", "textbook.cli", "migrate"], env=env, check=True, capture_output=True
    )
    log = data_dir / "server.log"
    base = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "textbook.cli", "serve"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        with TextbookClient(base, timeout=30, retry=NO_RETRY) as api:
            deadline = time.monotonic() + BOOT_TIMEOUT_SECONDS
            while True:
                if server.poll() is not None:
                    raise SystemExit(f"server exited ({server.returncode}); see {log}")
                try:
                    if api.health().status == "ok":
                        break
                except TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit(f"server not ready in {BOOT_TIMEOUT_SECONDS}s; see {log}")
                time.sleep(0.2)
        # The timed requests go through the standard library's client on one keep-alive
        # connection: it adds less of its own time to each request than an HTTP client library
        # (httpx, under textbook.client) does; the measure is the server's.
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

        def get(path: str) -> tuple[int, bytes]:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, response.read()

        paths = [f"/api/v1/search?{urlencode({'q': query, 'limit': 5})}" for query in QUERIES]
        for i in range(30):  # warm-up
            get(paths[i % len(paths)])
        # Rounds, search and /health interleaved: the machine is shared, so a burst of
        # other work shows as one bad round rather than as the whole figure, and /health
        # (no I/O) on the same server is the floor a request pays before the search.
        rounds: list[dict[str, float]] = []
        searches: list[float] = []
        healths: list[float] = []
        per_round = max(1, requests // API_ROUNDS)
        for _ in range(API_ROUNDS):
            round_times: list[float] = []
            for i in range(per_round):
                with stopwatch() as elapsed:
                    status, body = get(paths[i % len(paths)])
                round_times.append(elapsed[0])
                if status != 200 or not json.loads(body)["results"]:
                    raise SystemExit(f"search failed: {status} {body[:200]!r}")
                with stopwatch() as elapsed:
                    get("/health")
                healths.append(elapsed[0])
            searches.extend(round_times)
            summary = latency_summary(round_times)
            rounds.append({"p50_ms": summary["p50_ms"], "p95_ms": summary["p95_ms"]})
        memory = rss_mb(worker_pid(server.pid))
        connection.close()
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
    round_p95 = sorted(r["p95_ms"] for r in rounds)
    return {
        "server": "textbook serve (gunicorn, 1 worker)",
        "limit": 5,
        **latency_summary(searches),
        "rounds": rounds,
        "median_round_p95_ms": round_p95[len(round_p95) // 2],
        "health_floor": latency_summary(healths),
        "worker": memory,
    }


# --- the engines side by side ---------------------------------------------------------------


def engine_edge(points_file: Path, root: Path, searches: int) -> dict[str, Any]:
    import qdrant_edge as edge

    points = pickle.loads(points_file.read_bytes())  # noqa: S301 - our own file
    baseline = rss_mb()["rss_mb"]
    with stopwatch() as upsert:
        shard = edge.EdgeShard.create(
            str(root / "edge-engine"),
            edge.EdgeConfig(
                sparse_vectors={"bm25": edge.EdgeSparseVectorParams(modifier=edge.Modifier.Idf)}
            ),
        )
        shard.update(
            edge.UpdateOperation.create_field_index("chapter", edge.PayloadSchemaType.Keyword)
        )
        for start in range(0, len(points), 128):
            shard.update(
                edge.UpdateOperation.upsert_points(
                    [
                        edge.Point(
                            id=pid,
                            vector={"bm25": edge.SparseVector(indices=ix, values=vs)},
                            payload=payload,
                        )
                        for pid, ix, vs, payload in points[start : start + 128]
                    ]
                )
            )
        shard.flush()
    with stopwatch() as optimize:
        shard.optimize()  # as the store does after an ingest that changed something
    chapter = points[0][3]["chapter"]
    only = edge.Filter(must=[edge.FieldCondition(key="chapter", match=edge.MatchValue(chapter))])

    def run(flt: Any) -> list[float]:
        times = []
        for i in range(searches):
            vector = ENCODER.query(QUERIES[i % len(QUERIES)])
            request = edge.QueryRequest(
                limit=5,
                filter=flt,
                with_payload=True,
                query=edge.Query.Nearest(
                    edge.SparseVector(indices=vector.indices, values=vector.values), using="bm25"
                ),
            )
            with stopwatch() as elapsed:
                shard.query(request)
            times.append(elapsed[0])
        return times

    run(None)  # warm-up
    result = {
        "upsert_seconds": round(upsert[0], 2),
        "upsert_points_per_second": round(len(points) / upsert[0], 1),
        "optimize_seconds": round(optimize[0], 2),
        "query": latency_summary(run(None)),
        "query_chapter_filter": latency_summary(run(only)),
        "memory": {**rss_mb(), "points_loaded_baseline_mb": baseline},
    }
    shard.close()
    return result


def engine_local(points_file: Path, root: Path, searches: int) -> dict[str, Any]:
    import warnings

    from qdrant_client import QdrantClient, models

    points = pickle.loads(points_file.read_bytes())  # noqa: S301 - our own file
    baseline = rss_mb()["rss_mb"]
    client = QdrantClient(path=str(root / "local-mode"))
    with stopwatch() as upsert:
        client.create_collection(
            COLLECTION,
            vectors_config={},
            sparse_vectors_config={"bm25": models.SparseVectorParams(modifier=models.Modifier.IDF)},
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # no payload indexes in local mode
            client.create_payload_index(COLLECTION, "chapter", models.PayloadSchemaType.KEYWORD)
        for start in range(0, len(points), 128):
            client.upsert(
                COLLECTION,
                points=[
                    models.PointStruct(
                        id=pid,
                        payload=payload,
                        vector={"bm25": models.SparseVector(indices=ix, values=vs)},
                    )
                    for pid, ix, vs, payload in points[start : start + 128]
                ],
            )
    chapter = points[0][3]["chapter"]
    only = models.Filter(
        must=[models.FieldCondition(key="chapter", match=models.MatchValue(value=chapter))]
    )

    def run(flt: Any, count: int) -> list[float]:
        times = []
        for i in range(count):
            vector = ENCODER.query(QUERIES[i % len(QUERIES)])
            with stopwatch() as elapsed:
                client.query_points(
                    COLLECTION,
                    using="bm25",
                    limit=5,
                    query_filter=flt,
                    with_payload=True,
                    query=models.SparseVector(indices=vector.indices, values=vector.values),
                )
            times.append(elapsed[0])
        return times

    run(None, 2)  # warm-up
    result = {
        "upsert_seconds": round(upsert[0], 2),
        "upsert_points_per_second": round(len(points) / upsert[0], 1),
        "query": latency_summary(run(None, searches)),
        "query_chapter_filter": latency_summary(run(only, searches)),
        "memory": {**rss_mb(), "points_loaded_baseline_mb": baseline},
    }
    client.close()
    return result


def in_child(function: Any, *args: Any) -> dict[str, Any]:
    """Run `function` in a fresh process (its own memory figures), return its result."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        result: dict[str, Any] = pool.apply(function, args)
    return result


def run(
    sizes: list[int], searches: int, api_requests: int, local_max_chunks: int, local_searches: int
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="rag-bench-") as tmp:
        root = Path(tmp)
        for size in sizes:
            work = root / str(size)
            corpus = work / "chapters"
            corpus.mkdir(parents=True)
            copies = build_corpus(corpus, size)
            print(f"rag/{size}: {copies} copies of the sample textbook", flush=True)
            storage = work / "qdrant"
            store, points = measure_store(
                corpus, storage, searches, "ros2-foundations-copy0", reingest=size <= 20_000
            )
            print(f"rag/{size}: store done", flush=True)
            api = measure_api(work / "var", storage, api_requests)
            print(f"rag/{size}: api done", flush=True)
            points_file = work / "points.pickle"
            points_file.write_bytes(pickle.dumps(points))
            del points
            engines: dict[str, Any]
            if store["chunks"] <= local_max_chunks:
                engines = {
                    "edge": in_child(engine_edge, points_file, work, searches),
                    "qdrant_client_local_mode": {
                        "searches_capped_at": local_searches,
                        **in_child(engine_local, points_file, work, local_searches),
                    },
                }
            else:  # the store and api figures above are Edge's at this size
                engines = {
                    "skipped": f"{store['chunks']} chunks > --local-max-chunks "
                    f"{local_max_chunks}: local mode is brute force in "
                    "Python (minutes to upsert, seconds a query here)"
                }
            print(f"rag/{size}: engines done", flush=True)
            results[f"{size}_chunks"] = {
                "copies_of_sample": copies,
                "store": store,
                "api": api,
                "engines": engines,
            }
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--sizes", default="10000,100000", help="target chunk counts, comma-separated"
    )
    parser.add_argument("--searches", type=int, default=300)
    parser.add_argument("--api-requests", type=int, default=300)
    parser.add_argument("--local-max-chunks", type=int, default=20_000)
    parser.add_argument("--local-searches", type=int, default=30)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    started = time.perf_counter()
    results = run(
        sizes, args.searches, args.api_requests, args.local_max_chunks, args.local_searches
    )
    results["bench_seconds"] = round(time.perf_counter() - started, 1)
    results["bench_peak_rss_mb"] = round(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
    )
    path = write_report("rag", results)
    for name, result in results.items():
        if not isinstance(result, dict):
            continue
        store, api, engines = result["store"], result["api"], result["engines"]
        engine_text = "engines side by side skipped"
        if "edge" in engines:
            edge_query = engines["edge"]["query"]
            local_query = engines["qdrant_client_local_mode"]["query"]
            engine_text = (
                f"engine query edge p50 {edge_query['p50_ms']} ms p95 "
                f"{edge_query['p95_ms']} ms, local mode p50 {local_query['p50_ms']}"
                f" ms p95 {local_query['p95_ms']} ms"
            )
        print(
            f"rag/{name}: {store['chunks']} chunks, ingest "
            f"{store['ingest']['chunks_per_second']} chunks/s; store.search p50 "
            f"{store['search']['p50_ms']} ms p95 {store['search']['p95_ms']} ms; API p50 "
            f"{api['p50_ms']} ms p95 {api['p95_ms']} ms (median round p95 "
            f"{api['median_round_p95_ms']} ms, /health p95 {api['health_floor']['p95_ms']} ms)"
            f", worker RSS {api['worker']['rss_mb']} MiB; {engine_text}"
        )
    print(f"report: {path} ({results['bench_seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
