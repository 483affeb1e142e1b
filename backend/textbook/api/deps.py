"""Dependencies, as `Annotated` aliases the routes declare in their signatures."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.orm import Session

from textbook.core.config import Settings
from textbook.core.middleware import set_user_id
from textbook.core.ratelimit import RateLimiter
from textbook.core.security import TokenError, TokenType, decode_token
from textbook.llm import LLMClient
from textbook.models import User
from textbook.rag.store import Store

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/login", auto_error=False)


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


def get_db(request: Request) -> Iterator[Session]:
    with request.app.state.sessionmaker() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_db)]


def get_store(request: Request) -> Store:
    store: Store | None = request.app.state.store
    if store is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "The vector store is unavailable; see /api/v1/health",
        )
    return store


StoreDep = Annotated[Store, Depends(get_store)]


def get_llm(request: Request) -> LLMClient | None:
    llm: LLMClient | None = request.app.state.llm
    return llm


LLMDep = Annotated[LLMClient | None, Depends(get_llm)]


def get_rate_limiter(request: Request) -> RateLimiter:
    limiter: RateLimiter = request.app.state.rate_limiter
    return limiter


def client_ip(request: Request) -> str:
    # The client as ProxyHeadersMiddleware left it: X-Forwarded-For only from trusted proxies.
    return request.client.host if request.client else "unknown"


def limit_per_ip(request: Request) -> None:
    limiter = get_rate_limiter(request)
    limiter.check(limiter.per_ip, "per-ip", client_ip(request))


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail=detail,
        headers={"WWW-Authenticate": "Bearer"},
    )


def user_for_token(session: Session, settings: Settings, token: str, kind: TokenType) -> User:
    """The active user a valid token of `kind` was issued to, else 401 with the reason: bad,
    expired, revoked (issued before the user logged out) or the user gone or disabled."""
    try:
        claims = decode_token(settings, token, kind)
        user_id = uuid.UUID(claims.subject)
    except TokenError as exc:
        raise _unauthorized(str(exc)) from exc
    except ValueError as exc:
        raise _unauthorized("Could not validate credentials") from exc
    user = session.get(User, user_id)
    if user is None or not user.is_active:
        raise _unauthorized("User not found or inactive")
    if claims.version != user.token_version:
        raise _unauthorized("Token has been revoked (logged out)")
    return user


def get_current_user(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    token: Annotated[str | None, Depends(oauth2_scheme)],
) -> User:
    if not token:
        raise _unauthorized("Not authenticated")
    user = user_for_token(session, settings, token, "access")
    set_user_id(request.scope, str(user.id))
    limiter = get_rate_limiter(request)
    limiter.check(limiter.per_user, "per-user", str(user.id))
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


def get_admin_user(user: CurrentUser) -> User:
    if not user.is_admin:
        raise HTTPException(status_code=status.HTTP_403_FORBIDDEN, detail="Admin role required")
    return user


AdminUser = Annotated[User, Depends(get_admin_user)]


def limit_chat(request: Request, user: CurrentUser) -> None:
    limiter = get_rate_limiter(request)
    limiter.check(limiter.chat, "chat", str(user.id))
