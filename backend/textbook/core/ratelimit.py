"""Rate limits per client IP and per user, kept in settings.rate_limit_storage_uri."""

from __future__ import annotations

import math
import time

from fastapi import HTTPException, status
from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from textbook.core.config import Settings


class RateLimitExceeded(HTTPException):
    def __init__(self, scope: str, retry_after: int) -> None:
        super().__init__(
            status_code=status.HTTP_429_TOO_MANY_REQUESTS,
            detail=f"Rate limit exceeded ({scope}); retry in {retry_after} seconds",
            headers={"Retry-After": str(retry_after)},
        )


class RateLimiter:
    def __init__(self, settings: Settings) -> None:
        self.storage = storage_from_string(settings.rate_limit_storage_uri)
        self.limiter = MovingWindowRateLimiter(self.storage)
        self.per_ip = parse(settings.rate_limit_per_ip)
        self.per_user = parse(settings.rate_limit_per_user)
        self.chat = parse(settings.rate_limit_chat)

    def check(self, item: RateLimitItem, scope: str, key: str) -> None:
        """Count one hit; RateLimitExceeded (429 with Retry-After) when over the limit."""
        if self.limiter.hit(item, scope, key):
            return
        reset_at = self.limiter.get_window_stats(item, scope, key).reset_time
        raise RateLimitExceeded(scope, max(1, math.ceil(reset_at - time.time())))

    def ping(self) -> bool:
        return bool(self.storage.check())
