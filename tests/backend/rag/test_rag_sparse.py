"""BM25 sparse vectors from qdrant_edge.Bm25: what we rely on of the pinned library."""

from __future__ import annotations

import statistics
from importlib.metadata import version

from qdrant_edge import Bm25, Bm25Config

from textbook.core.config import SAMPLE_CONTENT_DIR, Settings
from textbook.rag.chunking import chunk_chapters
from textbook.rag.content import load_chapters
from textbook.rag.sparse import (
    AVG_DOC_TOKENS,
    K1,
    MIN_TOKEN_LEN,
    SparseEncoder,
    SparseVec,
    encoder_for,
    terms,
)

ENCODER = SparseEncoder()


def _weight(text: str, word: str) -> float:
    vector = ENCODER.document(text)
    (term,) = terms(word)
    return vector.values[vector.indices.index(term)]


def test_stopwords_are_dropped_and_plurals_folded() -> None:
    assert ENCODER.query("What is a QoS profile?") == ENCODER.query("the QoS profiles")
    assert terms("policies") == terms("policy")
    assert not ENCODER.query("what is the")
    assert not ENCODER.query("b) c) x")  # single characters match at random


def test_a_single_character_setting_keeps_letters_and_digits() -> None:
    assert encoder_for(Settings(_env_file=None, sparse_min_token_len=1)).query("b 2")


def test_the_settings_switch_stemming_and_stopwords_off() -> None:
    plain = encoder_for(Settings(_env_file=None, sparse_stemming=False, sparse_stopwords=False))
    assert plain.query("profiles") != plain.query("profile")
    assert plain.query("what is the")
    assert len({ENCODER.signature, plain.signature}) == 2


def test_query_vector_has_unit_weights_per_distinct_term() -> None:
    vector = WORDS_ONLY.query("QoS profile QoS profiles")
    assert sorted(vector.indices) == sorted(terms("qos profile"))
    assert vector.values == [1.0, 1.0]
    # with pairs and headings: qos, profile, (qos profile), (profile qos), two heading terms
    assert ENCODER.query("QoS profile QoS profiles").values == [1.0] * 6


def test_documents_and_queries_use_the_same_term_ids() -> None:
    # Ingest and search must encode alike, or nothing matches.
    text = "Kalman filters fuse an IMU with odometry."
    document = ENCODER.document(text, heading="Kalman filter")
    assert set(ENCODER.query("kalman filter").indices) <= set(document.indices)
    assert set(ENCODER.query(text).indices) <= set(ENCODER.document(text, heading=text).indices)


def test_term_frequency_saturates() -> None:
    filler = " ".join(f"filler{i}" for i in range(60))
    once, twice, many = (
        _weight(f"{' '.join(['kalman'] * n)} {filler}", "kalman") for n in (1, 2, 20)
    )
    assert once < twice < many < K1 + 1
    assert twice - once > (many - twice) / 18  # each extra occurrence adds less


def test_longer_documents_weigh_a_term_less() -> None:
    short = _weight("kalman filter gain", "kalman")
    long = _weight("kalman " + " ".join(f"word{i}" for i in range(300)), "kalman")
    assert short > long


def test_signature_names_the_library_version() -> None:
    # The signature enters the chunk ids: an upgrade of the pinned library re-indexes.
    assert f"qdrant-edge-bm25/{version('qdrant-edge-py')}/" in ENCODER.signature


def test_average_length_constant_matches_the_sample_textbook() -> None:
    """AVG_DOC_TOKENS should track the real chunk length; re-measure when this fails."""
    # With b = 0 and a huge k, a term's weight is its count, so the weights sum to the length.
    counter = Bm25(Bm25Config(k=1e9, b=0.0, language="english", min_token_len=MIN_TOKEN_LEN))
    lengths = [
        sum(counter.embed_document(c.search_text).values)
        for c in chunk_chapters(load_chapters(SAMPLE_CONTENT_DIR))
    ]
    assert AVG_DOC_TOKENS * 0.8 <= statistics.mean(lengths) <= AVG_DOC_TOKENS * 1.25


WORDS_ONLY = SparseEncoder(bigram_weight=0, heading_weight=0)


def _dot(query: SparseVec, document: SparseVec) -> float:
    weights = dict(zip(document.indices, document.values, strict=True))
    return sum(
        weights.get(index, 0.0) * value
        for index, value in zip(query.indices, query.values, strict=True)
    )


def test_adjacent_terms_score_above_the_same_terms_apart() -> None:
    together, apart = "A digital twin mirrors the robot.", "A twin mirrors the digital robot."
    query = ENCODER.query("digital twins")
    assert _dot(query, ENCODER.document(together)) > _dot(query, ENCODER.document(apart))
    # the same words, so without term pairs the same score
    words = WORDS_ONLY.query("digital twins")
    assert _dot(words, WORDS_ONLY.document(together)) == _dot(words, WORDS_ONLY.document(apart))


def test_pairs_skip_stopwords_and_keep_their_order() -> None:
    # "stereo of depth" pairs stereo with depth once "of" is dropped; "depth stereo" does not
    query = ENCODER.query("stereo depth")
    assert _dot(query, ENCODER.document("stereo of depth")) > _dot(
        query, ENCODER.document("depth stereo")
    )


def test_a_heading_naming_the_query_terms_lifts_its_chunk() -> None:
    text = "Matching pixels between two cameras gives disparity."
    query = ENCODER.query("stereo depth")
    named = ENCODER.document(f"Stereo depth\n\n{text} Stereo depth.", heading="Stereo depth")
    mentioned = ENCODER.document(f"Cameras\n\n{text} Stereo depth.", heading="Cameras")
    assert _dot(query, named) > _dot(query, mentioned)


def test_zero_weights_leave_words_only_and_change_the_signature() -> None:
    assert set(WORDS_ONLY.query("digital twin").indices) == terms("digital twin")
    document = WORDS_ONLY.document("digital twin", heading="Digital twins")
    assert set(document.indices) == terms("digital twin")
    assert WORDS_ONLY.signature != ENCODER.signature
    settings = Settings(_env_file=None, sparse_bigram_weight=0, sparse_heading_weight=0)
    assert encoder_for(settings).signature == WORDS_ONLY.signature
