"""Chat completions through the `openai` client: OpenAI itself, or Gemini through its
OpenAI-compatible endpoint. Timeouts and retries come from the settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import openai
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageParam

from textbook.core.config import Settings


class LLMError(Exception):
    """The provider failed; the message is safe to show the client (HTTP 502)."""


class LLMTimeout(LLMError):
    """The provider did not answer in time (HTTP 504)."""


class LLMClient:
    def __init__(self, settings: Settings) -> None:
        self.provider = settings.chat_provider
        api_key, base_url = settings.provider_credentials(self.provider)
        self.model = settings.resolved_chat_model
        self.timeout = settings.llm_timeout_seconds
        self.client = AsyncOpenAI(
            api_key=api_key,
            base_url=base_url,
            timeout=settings.llm_timeout_seconds,
            max_retries=settings.llm_max_retries,
        )

    def _translate(self, exc: Exception) -> LLMError:
        if isinstance(exc, openai.APITimeoutError):
            return LLMTimeout(
                f"The language model ({self.provider}) did not answer within "
                f"{self.timeout:g} seconds"
            )
        if isinstance(exc, openai.APIStatusError):
            return LLMError(
                f"The language model provider ({self.provider}) returned HTTP {exc.status_code}"
            )
        if isinstance(exc, openai.APIConnectionError):
            return LLMError(f"Could not reach the language model provider ({self.provider})")
        return LLMError(
            f"The language model provider ({self.provider}) failed: {type(exc).__name__}"
        )

    async def complete(self, messages: list[dict[str, Any]]) -> str:
        try:
            response = await self.client.chat.completions.create(
                model=self.model,
                messages=cast(list[ChatCompletionMessageParam], messages),
            )
        except openai.OpenAIError as exc:
            raise self._translate(exc) from exc
        if not response.choices or not response.choices[0].message.content:
            raise LLMError(f"The language model provider ({self.provider}) sent an empty answer")
        return response.choices[0].message.content

    async def stream(self, messages: list[dict[str, Any]]) -> AsyncIterator[str]:
        """Text deltas as they arrive."""
        try:
            chunks = await self.client.chat.completions.create(
                model=self.model,
                messages=cast(list[ChatCompletionMessageParam], messages),
                stream=True,
            )
            async for chunk in chunks:
                if chunk.choices and chunk.choices[0].delta.content:
                    yield chunk.choices[0].delta.content
        except openai.OpenAIError as exc:
            raise self._translate(exc) from exc

    async def close(self) -> None:
        await self.client.close()


def make_llm_client(settings: Settings) -> LLMClient | None:
    """None when no provider key is configured: answers are then composed from passages."""
    if settings.chat_provider == "none":
        return None
    return LLMClient(settings)
