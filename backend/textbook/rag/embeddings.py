"""Dense embeddings through the `openai` client (OpenAI, or Gemini's OpenAI-compatible API).

`make_embedder(settings)` returns None when no embeddings provider is configured; retrieval
is then BM25 alone. Requests are batched and bounded by the settings' timeout and retries.
"""

from __future__ import annotations

from collections.abc import Sequence

import openai
from openai import OpenAI

from textbook.core.config import Settings

__all__ = ["BATCH_SIZE", "Embedder", "EmbeddingError", "make_embedder"]

# OpenAI accepts up to 2048 inputs per request, Gemini's compatible endpoint 100.
BATCH_SIZE = 64


class EmbeddingError(RuntimeError):
    """The embeddings provider failed; the message names the provider, never the key."""


class Embedder:
    def __init__(self, settings: Settings) -> None:
        self.provider = settings.embeddings_provider
        api_key, base_url = settings.provider_credentials(self.provider)
        self.model = settings.resolved_embedding_model
        # 0 means the model's own size; it is learnt from the first response.
        self.requested_dimensions = settings.embedding_dimensions or None
        self.client = OpenAI(
            api_key=api_key,
            base_url=base_url,
            timeout=settings.llm_timeout_seconds,
            max_retries=settings.llm_max_retries,
        )

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, in order; EmbeddingError when the provider fails."""
        vectors: list[list[float]] = []
        for start in range(0, len(texts), BATCH_SIZE):
            batch = list(texts[start : start + BATCH_SIZE])
            try:
                if self.requested_dimensions:
                    response = self.client.embeddings.create(
                        model=self.model,
                        input=batch,
                        encoding_format="float",
                        dimensions=self.requested_dimensions,
                    )
                else:
                    response = self.client.embeddings.create(
                        model=self.model, input=batch, encoding_format="float"
                    )
            except openai.OpenAIError as exc:
                raise EmbeddingError(
                    f"embeddings provider {self.provider} failed: {type(exc).__name__}"
                ) from exc
            ordered = sorted(response.data, key=lambda item: item.index)
            if len(ordered) != len(batch):
                raise EmbeddingError(
                    f"embeddings provider {self.provider} returned "
                    f"{len(ordered)} vectors for {len(batch)} inputs"
                )
            vectors.extend(list(item.embedding) for item in ordered)
        return vectors

    def embed_query(self, text: str) -> list[float]:
        return self.embed([text])[0]

    def dimensions(self) -> int:
        """The vector size: the configured one, else measured with one request."""
        if self.requested_dimensions:
            return self.requested_dimensions
        return len(self.embed_query("dimension probe"))

    def close(self) -> None:
        self.client.close()


def make_embedder(settings: Settings) -> Embedder | None:
    """The configured embedder, or None when EMBEDDING_PROVIDER resolves to "none"."""
    if settings.embeddings_provider == "none":
        return None
    return Embedder(settings)
