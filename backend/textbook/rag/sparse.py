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

`SparseEncoder.signature` names the encoding, the library version included; it enters the
chunk ids, so another encoding (a setting, or a qdrant-edge-py upgrade) re-indexes
everything on the next ingest instead of mixing vectors of two encodings.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import version

from qdrant_edge import Bm25, Bm25Config, DisabledStemmer, SparseVector, StopwordsSet

from textbook.core.config import Settings

__all__ = [
    "AVG_DOC_TOKENS",
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


@dataclass(frozen=True, slots=True)
class SparseVec:
    indices: list[int]
    values: list[float]

    def __bool__(self) -> bool:
        return bool(self.indices)


def _vec(vector: SparseVector) -> SparseVec:
    return SparseVec(indices=list(vector.indices), values=[float(v) for v in vector.values])


class SparseEncoder:
    """Document and query vectors of one BM25 configuration."""

    def __init__(
        self, *, stemming: bool = True, stopwords: bool = True, min_token_len: int = MIN_TOKEN_LEN
    ) -> None:
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
            f"/min{min_token_len}"
        )

    def document(self, text: str) -> SparseVec:
        """BM25 term-frequency weights of a document (IDF is applied by Qdrant)."""
        return _vec(self._model.embed_document(text))

    def query(self, text: str) -> SparseVec:
        """Weight 1 per distinct query term; empty when the query has only stopwords."""
        return _vec(self._model.embed_query(text))

    def terms(self, text: str) -> frozenset[int]:
        """The distinct terms of a text (stopwords dropped, stems folded) as term ids."""
        return frozenset(self._model.embed_query(text).indices)


def encoder_for(settings: Settings) -> SparseEncoder:
    return SparseEncoder(
        stemming=settings.sparse_stemming,
        stopwords=settings.sparse_stopwords,
        min_token_len=settings.sparse_min_token_len,
    )


@lru_cache(maxsize=1)
def _default() -> SparseEncoder:
    return SparseEncoder()


def terms(text: str) -> frozenset[int]:
    """The distinct terms of a text under the default encoding (for sentence matching)."""
    return _default().terms(text)
