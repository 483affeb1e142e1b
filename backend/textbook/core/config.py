"""The one place configuration is read: the environment and an env file.

The deployment writes /etc/textbook/textbook.env; a developer may keep a `.env` in the
working directory. Every variable is documented in `.env.example`.
"""

from __future__ import annotations

import ipaddress
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PACKAGE_DIR = Path(__file__).resolve().parent.parent
SAMPLE_CONTENT_DIR = PACKAGE_DIR / "content" / "chapters"
DEV_SECRET_KEY = "dev-insecure-secret-key-change-me-0123456789"  # noqa: S105 - development only
GEMINI_OPENAI_BASE_URL = "https://generativelanguage.googleapis.com/v1beta/openai/"
MIN_SECRET_KEY_LENGTH = 32
# Values people paste from examples; refused outside development.
PLACEHOLDER_MARKERS = (
    "changeme",
    "change-me",
    "change_me",
    "replace",
    "example",
    "secret-key",
    "insecure",
    "xxxxxxxx",
    "placeholder",
    "your-",
)

Environment = Literal["development", "staging", "production"]
Provider = Literal["openai", "gemini", "none"]
# What a chunk's indexed text starts with: its chapter title and parent headings ("trail"),
# its own heading ("section"), or nothing ("none").
HeadingContext = Literal["trail", "section", "none"]


def _env_files() -> tuple[str, ...]:
    # TEXTBOOK_ENV_FILE names the deployment's file; a local .env is read in development.
    explicit = os.environ.get("TEXTBOOK_ENV_FILE")
    return (explicit,) if explicit else (".env",)


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    """Runtime settings. Field names map to upper-case environment variables."""

    model_config = SettingsConfigDict(
        env_file=_env_files(),
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        # `VAR=` (as in .env.example) means "use the default", not an empty value.
        env_ignore_empty=True,
    )

    environment: Environment = "development"
    secret_key: SecretStr = SecretStr(DEV_SECRET_KEY)
    # Previous signing key, still accepted for verification during a rotation's grace period.
    secret_key_previous: SecretStr | None = None
    domain_name: str = "localhost"
    project_name: str = "Physical AI & Humanoid Robotics textbook"

    # Storage. Defaults are the embedded mode: a SQLite file and Qdrant Edge on disk.
    data_dir: Path = Path("./var")
    database_url: str = ""
    qdrant_url: str | None = None
    qdrant_api_key: SecretStr | None = None
    qdrant_path: Path | None = None
    qdrant_collection: str = "textbook"
    content_path: Path = SAMPLE_CONTENT_DIR

    # Language models, both reached through the `openai` client.
    llm_provider: Provider | None = None  # None: openai if its key is set, else gemini, else none
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    gemini_api_key: SecretStr | None = None
    gemini_base_url: str = GEMINI_OPENAI_BASE_URL
    chat_model: str = ""  # "" picks the provider's default
    embedding_provider: Provider | None = None  # None: same provider as chat when it has a key
    embedding_model: str = ""
    embedding_dimensions: int = Field(default=0, ge=0)  # 0: the model's default
    llm_timeout_seconds: float = Field(default=30.0, gt=0)
    llm_max_retries: int = Field(default=1, ge=0, le=5)
    retrieval_top_k: int = Field(default=5, ge=1, le=20)

    # How chapters become indexed chunks and BM25 vectors; `make eval` measures the choices
    # (docs/backend.md). Changing one re-indexes every chunk on the next ingest.
    chunk_max_chars: int = Field(default=1200, ge=200, le=20000)
    chunk_heading_context: HeadingContext = "trail"
    sparse_stemming: bool = True
    sparse_stopwords: bool = True
    sparse_min_token_len: int = Field(default=2, ge=1, le=10)
    sparse_bigram_weight: float = Field(default=0.3, ge=0, le=2)  # 0: no term pairs
    sparse_heading_weight: float = Field(default=0.1, ge=0, le=2)  # 0: no heading field
    history_turns: int = Field(default=6, ge=0, le=50)

    # Auth.
    access_token_minutes: int = Field(default=30, ge=1)
    refresh_token_days: int = Field(default=14, ge=1)
    jwt_algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"

    # HTTP edge.
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["127.0.0.1"])
    # Who may read /metrics: addresses or networks (the client as TRUSTED_PROXIES resolve it),
    # "unix:" for a local peer on the unix socket. Others get 403.
    metrics_allowed_networks: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["127.0.0.0/8", "::1", "unix:"]
    )
    rate_limit_per_ip: str = "120/minute"
    rate_limit_per_user: str = "60/minute"
    rate_limit_chat: str = "20/minute"
    rate_limit_storage_uri: str = "memory://"
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    log_level: str = "INFO"
    sse_heartbeat_seconds: float = Field(default=15.0, gt=0)

    @field_validator("cors_origins", "trusted_proxies", "metrics_allowed_networks", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("metrics_allowed_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            if entry != "unix:":
                ipaddress.ip_network(entry, strict=False)  # ValueError names the bad entry
        return value

    @model_validator(mode="after")
    def _derive_and_check(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{(self.data_dir / 'textbook.db').as_posix()}"
        if self.qdrant_url is None and self.qdrant_path is None:
            self.qdrant_path = self.data_dir / "qdrant"
        if self.environment != "development":
            key = self.secret_key.get_secret_value()
            # The built-in default only exists for development: here it means "not set".
            problem = "is not set" if key == DEV_SECRET_KEY else secret_key_problem(key)
            if problem:
                raise ValueError(f"SECRET_KEY {problem} (ENVIRONMENT={self.environment})")
        return self

    # Derived values other modules use; one place decides them.
    @property
    def chat_provider(self) -> Provider:
        return self._resolve(self.llm_provider)

    @property
    def embeddings_provider(self) -> Provider:
        return self._resolve(
            self.embedding_provider if self.embedding_provider else self.llm_provider
        )

    def _resolve(self, chosen: Provider | None) -> Provider:
        if chosen is not None:
            return chosen
        if self.openai_api_key:
            return "openai"
        if self.gemini_api_key:
            return "gemini"
        return "none"

    def provider_credentials(self, provider: Provider) -> tuple[str, str | None]:
        """API key and base URL for a provider; ValueError when its key is missing."""
        if provider == "openai":
            key, base = self.openai_api_key, self.openai_base_url
        elif provider == "gemini":
            key, base = self.gemini_api_key, self.gemini_base_url
        else:
            raise ValueError("no LLM provider configured")
        if key is None or not key.get_secret_value():
            raise ValueError(f"{provider.upper()}_API_KEY is not set")
        return key.get_secret_value(), base

    @property
    def resolved_chat_model(self) -> str:
        if self.chat_model:
            return self.chat_model
        return "gemini-2.0-flash" if self.chat_provider == "gemini" else "gpt-4o-mini"

    @property
    def resolved_embedding_model(self) -> str:
        if self.embedding_model:
            return self.embedding_model
        return (
            "text-embedding-004"
            if self.embeddings_provider == "gemini"
            else ("text-embedding-3-small")
        )

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def secret_key_problem(key: str) -> str | None:
    """Why a signing key is unfit outside development, or None when it is fine."""
    if not key:
        return "is not set"
    if len(key) < MIN_SECRET_KEY_LENGTH:
        return f"is too short ({len(key)} characters; at least {MIN_SECRET_KEY_LENGTH} needed)"
    lowered = key.lower()
    if key == DEV_SECRET_KEY or any(marker in lowered for marker in PLACEHOLDER_MARKERS):
        return "is a placeholder value; generate one with `openssl rand -hex 32`"
    if len(set(key)) < 8:
        return "has too little variety to be a random key"
    return None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
