"""BM25 sparse vectors: the document half of BM25 here, the IDF half in Qdrant.

A document's weight for term t is BM25's saturated term frequency

    tf * (k1 + 1) / (tf + k1 * (1 - b + b * len / avg_len))

and a query's weight is 1 per distinct term. The collection's sparse vector is created with
`Modifier.IDF`, so Qdrant multiplies each query term by its inverse document frequency over
the stored points; the dot product then is the BM25 score. Tokens are hashed into a fixed
31-bit id space, so no vocabulary has to be stored or kept in sync between processes.

`avg_len` is a constant (the measured mean of the sample textbook's chunks) rather than a
statistic of the current collection: a chunk's vector then depends on its text alone, which
keeps the content-hash ids meaningful (an unchanged chunk never needs re-weighting).
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from dataclasses import dataclass
from importlib.metadata import version
from typing import Protocol

from qdrant_edge import Bm25, Bm25Config, DisabledStemmer, StopwordsSet

from textbook.core.config import Settings

__all__ = ["AVG_DOC_TOKENS", "B", "K1", "SPARSE_DIMENSION", "STOPWORDS", "SparseVec",  # noqa: RUF022
           "document_vector", "query_vector", "stem", "token_id", "tokenize",
           "SparseEncoder", "encoder_for"]

K1 = 1.2
B = 0.75
# Mean token count of the sample textbook's chunks (search text: headings + body), measured
# with tokenize(); see tests/backend/rag/test_rag_sparse.py.
AVG_DOC_TOKENS = 70.0
SPARSE_DIMENSION = 1 << 31

_STOPWORD_LIST = """
a about above after again against all also am an and any are aren't as at be because been
before being below between both but by can cannot could did do does doing don't down during
each either else etc ever every few for from further get gets got had has have having he her
here hers herself him himself his how i if in into is isn't it it's its itself just let me
more most much must my myself no nor not now of off on once only or other ought our ours
ourselves out over own per same shall she should so some such than that the their theirs them
themselves then there these they this those through thus to too under until up upon us very
via was we were what when where whether which while who whom whose why will with within
without would yet you your yours yourself yourselves
"""
STOPWORDS = frozenset(_STOPWORD_LIST.split())

_TOKEN_RE = re.compile(r"[a-z0-9]+")
# Question words carry no topic; they are stopwords for queries and documents alike.
_EXTRA_STOPWORDS = frozenset({"explain", "describe", "tell", "please", "mean", "means"})


@dataclass(frozen=True, slots=True)
class SparseVec:
    indices: list[int]
    values: list[float]

    def __bool__(self) -> bool:
        return bool(self.indices)


def stem(token: str) -> str:
    """Fold English plurals onto the singular ("profiles" -> "profile", "policies" -> "policy")."""
    if len(token) <= 3 or token.isdigit():
        return token
    if token.endswith("ies") and len(token) > 4:
        return token[:-3] + "y"
    if token.endswith(("sses", "xes", "ches", "shes", "zzes")):
        return token[:-2]
    if token.endswith("s") and not token.endswith(("ss", "us", "is", "os")):
        return token[:-1]
    return token


def tokenize(text: str) -> list[str]:
    """Lower-case alphanumeric runs without stopwords, plurals folded; digits kept."""
    tokens: list[str] = []
    for raw in _TOKEN_RE.findall(text.lower()):
        if raw in STOPWORDS or raw in _EXTRA_STOPWORDS or (len(raw) == 1 and not raw.isdigit()):
            continue
        tokens.append(stem(raw))
    return tokens


def token_id(token: str) -> int:
    return zlib.crc32(token.encode("utf-8")) % SPARSE_DIMENSION


def _vector(weights: dict[int, float]) -> SparseVec:
    ordered = sorted(weights.items())
    return SparseVec(indices=[i for i, _ in ordered], values=[v for _, v in ordered])


def document_vector(text: str, *, avg_len: float = AVG_DOC_TOKENS) -> SparseVec:
    """BM25 term-frequency weights of a document (IDF is applied by Qdrant)."""
    tokens = tokenize(text)
    norm = K1 * (1 - B + B * len(tokens) / avg_len)
    weights: dict[int, float] = {}
    for token, tf in Counter(tokens).items():
        index = token_id(token)
        # Two tokens hashing to one id add up, as if they were the same word.
        weights[index] = weights.get(index, 0.0) + tf * (K1 + 1) / (tf + norm)
    return _vector(weights)


def query_vector(text: str) -> SparseVec:
    """Weight 1 per distinct query term; empty when the query has only stopwords."""
    return _vector({token_id(token): 1.0 for token in set(tokenize(text))})


class SparseEncoder(Protocol):
    signature: str

    def document(self, text: str) -> SparseVec: ...

    def query(self, text: str) -> SparseVec: ...


class OwnEncoder:
    signature = "own-bm25/k1.2/b0.75/avg70"

    def document(self, text: str) -> SparseVec:
        return document_vector(text)

    def query(self, text: str) -> SparseVec:
        return query_vector(text)


class EdgeBm25Encoder:
    def __init__(self, *, stemming: bool = True, stopwords: bool = True,
                 avg_len: float = AVG_DOC_TOKENS) -> None:
        config = Bm25Config(k=K1, b=B, avg_len=avg_len, language="english",
                            stemmer=None if stemming else DisabledStemmer(),
                            stopwords=None if stopwords else StopwordsSet())
        self._model = Bm25(config)
        self.signature = (f"qdrant-edge-bm25/{version('qdrant-edge-py')}/k{K1}/b{B}/avg{avg_len}"
                          f"/stem{int(stemming)}/stop{int(stopwords)}")

    @staticmethod
    def _vec(vector: object) -> SparseVec:
        indices = list(vector.indices)  # type: ignore[attr-defined]
        values = [float(v) for v in vector.values]  # type: ignore[attr-defined]
        return SparseVec(indices=indices, values=values)

    def document(self, text: str) -> SparseVec:
        return self._vec(self._model.embed_document(text))

    def query(self, text: str) -> SparseVec:
        return self._vec(self._model.embed_query(text))


def encoder_for(settings: Settings) -> SparseEncoder:
    if settings.sparse_encoder == "own":
        return OwnEncoder()
    return EdgeBm25Encoder(stemming=settings.sparse_stemming,
                           stopwords=settings.sparse_stopwords)
