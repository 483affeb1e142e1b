"""Retrieval benchmark: ingest throughput, search latency at ~10k chunks, extractive answers.

The corpus is the sample textbook scaled up: each chapter is copied N times with its own
slug, chapter number and module, and a share of its prose words varied per copy, so the
copies are distinct chunks with a growing vocabulary rather than duplicates.

    python bench/rag.py [--target-chunks 10000] [--searches 40] [--answers 1000]

Runs against Qdrant's local (embedded) mode with BM25 only, as the lab has no embeddings
provider; set QDRANT_URL to measure a Qdrant server instead (a throwaway collection is used
and dropped).
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import tempfile
from pathlib import Path

from _report import latency_summary, stopwatch, write_report

from textbook.core.config import SAMPLE_CONTENT_DIR, Settings
from textbook.rag.answer import compose_extractive_answer
from textbook.rag.chunking import chunk_chapters
from textbook.rag.content import iter_markdown_lines, load_chapters
from textbook.rag.store import VectorStore

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
            text = _WORD_RE.sub(lambda m: f"{m.group(1)}{copy % 97}v{rng.randint(0, 40)}"
                                if rng.random() < VARIANT_SHARE else m.group(1), text)
        lines.append(text)
    return "\n".join(lines) + "\n"


def _copy_front_matter(front: str, copy: int) -> str:
    """The front matter of copy number `copy`: own slug, chapter number and module."""
    front = re.sub(r"^slug:\s*(\S+)", rf"slug: \1-copy{copy}", front, flags=re.M)
    front = re.sub(r"^chapter:\s*(\d+)",
                   lambda m: f"chapter: {copy * 100 + int(m.group(1))}", front, flags=re.M)
    return re.sub(r'^module:\s*"?(.*?)"?\s*$', rf'module: "\1 (copy {copy})"', front,
                  flags=re.M)


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
            body = _vary_prose(text[match.end():], rng, copy)
            (target / f"{copy:03d}-{source.name}").write_text(f"---\n{front}\n---\n{body}",
                                                             encoding="utf-8")
    return copies


def measure(corpus: Path, storage: Path, searches: int, answers: int,
            filter_chapter: str) -> dict[str, object]:
    """Ingest `corpus` twice, then time searches and extractive answers."""
    with stopwatch() as parse:
        chunk_count = len(chunk_chapters(load_chapters(corpus)))
    settings = Settings(_env_file=None, qdrant_path=storage,
                        qdrant_collection="bench_textbook", embedding_provider="none",
                        llm_provider="none")
    store = VectorStore(settings)
    try:
        if not store.local:
            store.client.delete_collection(store.collection)
        first = store.ingest(corpus)
        second = store.ingest(corpus)  # unchanged content: the idempotency scan alone
        for query in QUERIES[:3]:  # warm-up
            store.search(query, limit=5)
        search_times: list[float] = []
        filtered_times: list[float] = []
        for i in range(searches):
            query = QUERIES[i % len(QUERIES)]
            with stopwatch() as elapsed:
                store.search(query, limit=5)
            search_times.append(elapsed[0])
            with stopwatch() as elapsed:
                store.search(query, limit=5, chapter=filter_chapter)
            filtered_times.append(elapsed[0])
        passages = {q: store.search(q, limit=5) for q in QUERIES}
        answer_times: list[float] = []
        for i in range(answers):
            query = QUERIES[i % len(QUERIES)]
            with stopwatch() as elapsed:
                compose_extractive_answer(query, passages[query])
            answer_times.append(elapsed[0])
        stored = store.count()
        mode = "local" if store.local else "server"
        if not store.local:
            store.client.delete_collection(store.collection)
    finally:
        store.close()
    return {
        "qdrant_mode": mode,
        "retrieval": "bm25",
        "corpus": {"chapters": first.chapters, "chunks": chunk_count, "stored_points": stored,
                   "parse_and_chunk_seconds": round(parse[0], 3)},
        "ingest": {"seconds": round(first.seconds, 3),
                   "chunks_per_second": round(first.chunks / first.seconds, 1),
                   "added": first.added},
        "reingest_unchanged": {"seconds": round(second.seconds, 3), "added": second.added,
                               "unchanged": second.unchanged},
        "search": {"limit": 5, **latency_summary(search_times)},
        "search_chapter_filter": {"limit": 5, **latency_summary(filtered_times)},
        "extractive_answer": {"passages": 5, **latency_summary(answer_times)},
    }


def run(target_chunks: int, searches: int, answers: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="rag-bench-") as tmp:
        root = Path(tmp)
        sample = measure(SAMPLE_CONTENT_DIR, root / "qdrant-sample", searches, answers,
                         "ros2-foundations")
        corpus = root / "chapters"
        corpus.mkdir()
        copies = build_corpus(corpus, target_chunks)
        scaled = measure(corpus, root / "qdrant-scaled", searches, answers,
                         "ros2-foundations-copy0")
        scaled["copies_of_sample"] = copies
    return {"sample_textbook": sample, "scaled": scaled}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--target-chunks", type=int, default=10_000)
    parser.add_argument("--searches", type=int, default=40)
    parser.add_argument("--answers", type=int, default=1000)
    args = parser.parse_args(argv)
    results = run(args.target_chunks, args.searches, args.answers)
    path = write_report("rag", results)
    for name, result in results.items():
        assert isinstance(result, dict)
        corpus, ingest, search = result["corpus"], result["ingest"], result["search"]
        print(f"rag/{name}: {corpus['chunks']} chunks, ingest {ingest['chunks_per_second']} "
              f"chunks/s, search p50 {search['p50_ms']} ms p95 {search['p95_ms']} ms, "
              f"extractive answer p95 {result['extractive_answer']['p95_ms']} ms")
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
