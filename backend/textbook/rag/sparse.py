"""BM25 sparse vectors from Qdrant's own BM25 (`qdrant_edge.Bm25`); the IDF half in Qdrant.

`qdrant_edge.Bm25` is the tokenizer, English stopword list and Snowball stemmer of the Qdrant
server's BM25 inference, run in our process. A document's weight for term t is BM25's
saturated term frequency

    tf * (k1 + 1) / (tf + k1 * (1 - b + b * len / avg_len))

and a query's weight is 1 per distinct term. The collection's sparse vector is created with
`Modifier.IDF`, so Qdrant multiplies each query term by its inverse document frequency over
the stored points; the dot product then is the BM25 score. The vectors are computed here for
every store (embedded and server alike), so ingest and search always encode the same way.

`avg_len` is a constant (the measured mean token count of the sample textbook's chunks)
rather than a statistic of the current collection: a chunk's vector then depends on its
text alone, which keeps the content-hash ids meaningful (an unchanged chunk never needs
re-weighting). `make eval` measured it against Bm25's default of 256 (docs/backend.md).

Two more fields share the one sparse vector, each in its own index space so that Qdrant's IDF
counts them apart, and each weighted on the document side (queries weigh every term 1), so the
dot product is a weighted sum of three BM25 scores (BM25F-style field weighting):

- word pairs: consecutive terms of the text (after the library's stopwords and stemming),
  weighted `bigram_weight`, so "digital twin" or "stereo depth" count more than the two words
  apart;
- headings: the chunk's heading trail once more, weighted `heading_weight`, so a section
  named for what is asked ranks above one that only mentions it.

`make eval` measured the weights (docs/backend.md): both on lifts hit@1 0.882 -> 0.913 and
MRR@10 0.924 -> 0.941 on the sample textbook, the plateau's middle rather than its peak.

`SparseEncoder.signature` names the encoding, the library version included; it enters the
chunk ids, so another encoding (a setting, or a qdrant-edge-py upgrade) re-indexes
everything on the next ingest instead of mixing vectors of two encodings.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import version
from itertools import pairwise

from qdrant_edge import Bm25, Bm25Config, DisabledStemmer, StopwordsSet

from textbook.core.config import Settings

__all__ = [
    "AVG_DOC_TOKENS",
    "BIGRAM_WEIGHT",
    "HEADING_WEIGHT",
    "K1",
    "MIN_TOKEN_LEN",
    "B",
    "SparseEncoder",
    "SparseVec",
    "encoder_for",
    "terms",
]

K1 = 1.2
B = 0.75
# Mean token count of the sample textbook's chunks (search text: headings + body), measured
# with Bm25's tokenizer; see tests/backend/rag/test_rag_sparse.py.
AVG_DOC_TOKENS = 66.0
LANGUAGE = "english"
# Single characters (quiz options "b)", variable names, the "t" of "can't") match at random.
MIN_TOKEN_LEN = 2
BIGRAM_WEIGHT = 0.3
HEADING_WEIGHT = 0.1
# Word boundaries for word pairs only; each word's term comes from the library.
_WORD_RE = re.compile(r"[^\W_]+")
_WORD_CACHE = 1 << 16


@dataclass(frozen=True, slots=True)
class SparseVec:
    indices: list[int]
    values: list[float]

    def __bool__(self) -> bool:
        return bool(self.indices)


# Ids in the pair and heading index spaces: u32s like the library's own, mixed from the word
# ids by fixed multipliers (stable across processes and Python versions, unlike hash()).
_MASK = 0xFFFFFFFF
_MIX_A, _MIX_B = 0x9E3779B1, 0x85EBCA6B


def _pair_index(first: int, second: int) -> int:
    return ((first * _MIX_A + second) * _MIX_B) & _MASK


def _heading_index(term: int) -> int:
    return ((term ^ _MIX_B) * _MIX_A + 1) & _MASK


class SparseEncoder:
    """Document and query vectors of one BM25 configuration."""

    def __init__(
        self,
        *,
        stemming: bool = True,
        stopwords: bool = True,
        min_token_len: int = MIN_TOKEN_LEN,
        bigram_weight: float = BIGRAM_WEIGHT,
        heading_weight: float = HEADING_WEIGHT,
    ) -> None:
        self.bigram_weight, self.heading_weight = bigram_weight, heading_weight
        self._model = Bm25(
            Bm25Config(
                k=K1,
                b=B,
                avg_len=AVG_DOC_TOKENS,
                language=LANGUAGE,
                stemmer=None if stemming else DisabledStemmer(),
                stopwords=None if stopwords else StopwordsSet(),
                min_token_len=min_token_len,
            )
        )
        self.signature = (
            f"qdrant-edge-bm25/{version('qdrant-edge-py')}/{LANGUAGE}/k{K1}/b{B}"
            f"/avg{AVG_DOC_TOKENS}/stem{int(stemming)}/stop{int(stopwords)}"
            f"/min{min_token_len}/pairs{float(bigram_weight):g}/headings{float(heading_weight):g}"
        )
        self._word_term = lru_cache(maxsize=_WORD_CACHE)(self._term_of_word)

    def _term_of_word(self, word: str) -> int | None:
        term = self._model.embed_query(word).indices
        return term[0] if len(term) == 1 else None

    def _pairs(self, text: str) -> list[int]:
        """Ids of consecutive term pairs (stopwords and short tokens left out, as in BM25)."""
        found = map(self._word_term, _WORD_RE.findall(text))
        return [_pair_index(a, b) for a, b in pairwise(t for t in found if t is not None)]

    def document(self, text: str, heading: str = "") -> SparseVec:
        """BM25 term-frequency weights of a document (IDF is applied by Qdrant): its terms,
        its term pairs and its `heading`'s terms, the last two weighted."""
        words = self._model.embed_document(text)
        weights = dict(zip(words.indices, map(float, words.values), strict=True))
        if self.bigram_weight:
            pairs = Counter(self._pairs(text))
            norm = K1 * (1 - B + B * pairs.total() / AVG_DOC_TOKENS)
            scale = self.bigram_weight * (K1 + 1)
            for index, tf in pairs.items():  # BM25's saturation, as Bm25 does for words
                weights[index] = weights.get(index, 0.0) + scale * tf / (tf + norm)
        if self.heading_weight and heading:
            head = self._model.embed_document(heading)
            for term, value in zip(head.indices, head.values, strict=True):
                index = _heading_index(term)
                weights[index] = weights.get(index, 0.0) + self.heading_weight * value
        return SparseVec(indices=list(weights), values=list(weights.values()))

    def query(self, text: str) -> SparseVec:
        """Weight 1 per distinct query term (and term pair, and heading term); empty when the
        query has only stopwords."""
        words = list(self._model.embed_query(text).indices)
        indices = dict.fromkeys(words)
        if self.bigram_weight:
            indices.update(dict.fromkeys(self._pairs(text)))
        if self.heading_weight:
            indices.update(dict.fromkeys(map(_heading_index, words)))
        return SparseVec(indices=list(indices), values=[1.0] * len(indices))

    def terms(self, text: str) -> frozenset[int]:
        """The distinct terms of a text (stopwords dropped, stems folded) as term ids."""
        return frozenset(self._model.embed_query(text).indices)


def encoder_for(settings: Settings) -> SparseEncoder:
    return SparseEncoder(
        stemming=settings.sparse_stemming,
        stopwords=settings.sparse_stopwords,
        min_token_len=settings.sparse_min_token_len,
        bigram_weight=settings.sparse_bigram_weight,
        heading_weight=settings.sparse_heading_weight,
    )


@lru_cache(maxsize=1)
def _default() -> SparseEncoder:
    return SparseEncoder()


def terms(text: str) -> frozenset[int]:
    """The distinct terms of a text under the default encoding (for sentence matching)."""
    return _default().terms(text)
