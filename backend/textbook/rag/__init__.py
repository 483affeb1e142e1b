"""Retrieval over the textbook: chapters -> chunks -> Qdrant (BM25 sparse + optional dense).

Modules: `content` (Markdown chapters), `chunking` (heading-aware chunks with content-hash
ids), `sparse` (BM25 term weights), `embeddings` (dense vectors via the `openai` client),
`store` (the Qdrant collection: ingest, hybrid search, readiness) and `answer` (the
extractive no-LLM answer and the LLM prompts).
"""
