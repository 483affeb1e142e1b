""".env.example documents every setting, and used as-is gives the embedded defaults."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from textbook.core.config import SAMPLE_CONTENT_DIR, Settings

EXAMPLE = Path(__file__).resolve().parents[3] / ".env.example"


def test_every_setting_is_documented() -> None:
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", EXAMPLE.read_text(), re.M))
    missing = {name.upper() for name in Settings.model_fields} - documented
    assert not missing


def test_example_as_env_file_gives_embedded_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copy(EXAMPLE, tmp_path / ".env")
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert settings.environment == "development"
    assert settings.database_url == "sqlite:///var/textbook.db"
    assert settings.qdrant_url is None
    assert settings.qdrant_path == Path("var/qdrant")
    assert settings.content_path == SAMPLE_CONTENT_DIR
    assert settings.chat_provider == "none"
    assert settings.secret_key_previous is None
    assert settings.trusted_proxies == ["127.0.0.1"]
    assert settings.cors_origins == []


def test_example_secret_key_is_refused_in_production(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text(
        EXAMPLE.read_text().replace("ENVIRONMENT=development", "ENVIRONMENT=production")
    )
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="SECRET_KEY is not set"):
        Settings()
