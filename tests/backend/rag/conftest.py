"""Fixtures for the retrieval tests: fixture chapters copied to tmp_path, local-mode settings."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from textbook.core.config import Settings

FIXTURE_CHAPTERS = Path(__file__).parent / "fixtures" / "chapters"


@pytest.fixture
def chapters_dir(tmp_path: Path) -> Path:
    """A writable copy of the fixture chapters (ingest tests edit them)."""
    target = tmp_path / "chapters"
    shutil.copytree(FIXTURE_CHAPTERS, target)
    return target


@pytest.fixture
def sparse_settings(tmp_path: Path, chapters_dir: Path) -> Settings:
    """Qdrant local mode under tmp_path, no embeddings provider: the sparse-only path."""
    return Settings(_env_file=None, qdrant_url=None, qdrant_path=tmp_path / "qdrant",  # type: ignore[call-arg]
                    qdrant_collection="test_textbook", content_path=chapters_dir,
                    embedding_provider="none", llm_provider="none")


@pytest.fixture
def fixture_chapters() -> Path:
    """The read-only fixture chapter directory."""
    return FIXTURE_CHAPTERS
