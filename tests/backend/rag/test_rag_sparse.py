"""BM25 sparse vectors: tokenizer, saturation, length normalisation, stable hashing."""

from __future__ import annotations

import statistics
import zlib

from textbook.core.config import SAMPLE_CONTENT_DIR
from textbook.rag.chunking import chunk_chapters
from textbook.rag.content import load_chapters
from textbook.rag.sparse import (
    AVG_DOC_TOKENS,
    K1,
    SPARSE_DIMENSION,
    document_vector,
    query_vector,
    token_id,
    tokenize,
)


def test_tokenizer_drops_stopwords_and_folds_plurals() -> None:
    assert tokenize("What is a QoS profile? The profiles and policies of ROS 2 nodes.") == [
        "qos", "profile", "profile", "policy", "ros", "2", "node"]
    assert tokenize("create_publisher(Twist)") == ["create", "publisher", "twist"]
    assert tokenize("the of and is a") == []


def test_token_ids_are_stable_across_processes() -> None:
    # crc32, not Python's per-process salted hash(): ids written by one process match
    # queries made by another.
    assert token_id("qos") == zlib.crc32(b"qos") % SPARSE_DIMENSION
    assert all(0 <= token_id(t) < SPARSE_DIMENSION for t in ("a", "kalman", "2"))


def _weight(text: str, token: str) -> float:
    vector = document_vector(text)
    return vector.values[vector.indices.index(token_id(token))]


def test_term_frequency_saturates() -> None:
    filler = " ".join(f"filler{i}" for i in range(60))
    once, twice, many = (_weight(f"{' '.join(['kalman'] * n)} {filler}", "kalman")
                         for n in (1, 2, 20))
    assert once < twice < many < K1 + 1
    assert twice - once > (many - twice) / 18  # each extra occurrence adds less


def test_longer_documents_weigh_a_term_less() -> None:
    short = _weight("kalman filter gain", "kalman")
    long = _weight("kalman " + " ".join(f"word{i}" for i in range(300)), "kalman")
    assert short > long


def test_query_vector_has_unit_weights_per_distinct_term() -> None:
    vector = query_vector("QoS profile QoS profiles")
    assert sorted(vector.indices) == sorted({token_id("qos"), token_id("profile")})
    assert vector.values == [1.0, 1.0]
    assert not query_vector("what is the")


def test_average_length_constant_matches_the_sample_textbook() -> None:
    """AVG_DOC_TOKENS should track the real chunk length; re-measure when this fails."""
    lengths = [len(tokenize(c.search_text)) for c in chunk_chapters(load_chapters(
        SAMPLE_CONTENT_DIR))]
    assert AVG_DOC_TOKENS / 2 <= statistics.mean(lengths) <= AVG_DOC_TOKENS * 2
