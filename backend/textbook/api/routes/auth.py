"""Registration, login (OAuth2 password flow) and token refresh."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, status
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from textbook.api.deps import SessionDep, SettingsDep
from textbook.api.schemas import RefreshRequest, RegisterRequest, TokenResponse, UserOut
from textbook.core.security import (
    TokenError,
    create_token_pair,
    decode_token,
    hash_password,
    verify_password,
)
from textbook.models import User

router = APIRouter(prefix="/auth", tags=["auth"])


def _tokens(settings: SettingsDep, user: User) -> TokenResponse:
    pair = create_token_pair(settings, str(user.id))
    return TokenResponse(
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        expires_in=pair.expires_in,
    )


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=UserOut,
    responses={409: {"description": "E-mail already registered"}},
)
def register(body: RegisterRequest, session: SessionDep) -> User:
    email = body.email.lower()
    if session.scalar(select(User.id).where(func.lower(User.email) == email)) is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, "This e-mail address is already registered")
    user = User(email=email, hashed_password=hash_password(body.password), full_name=body.full_name)
    session.add(user)
    try:
        session.commit()
    except IntegrityError as exc:  # a concurrent registration won the race
        session.rollback()
        raise HTTPException(
            status.HTTP_409_CONFLICT, "This e-mail address is already registered"
        ) from exc
    return user


@router.post(
    "/login",
    response_model=TokenResponse,
    responses={401: {"description": "Wrong e-mail or password"}},
)
def login(
    username: Annotated[str, Form(min_length=1, max_length=320, description="E-mail")],
    password: Annotated[str, Form(min_length=1, max_length=128)],
    session: SessionDep,
    settings: SettingsDep,
    grant_type: Annotated[str | None, Form(pattern="^password$", max_length=8)] = None,
    scope: Annotated[str, Form(max_length=200)] = "",
) -> TokenResponse:
    """OAuth2 password flow: form fields `username` (the e-mail) and `password`."""
    user = session.scalar(select(User).where(func.lower(User.email) == username.lower()))
    if not verify_password(password, user.hashed_password if user else None) or user is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "Incorrect e-mail or password",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not user.is_active:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "This account is disabled")
    return _tokens(settings, user)


@router.post(
    "/refresh",
    response_model=TokenResponse,
    responses={401: {"description": "Invalid or expired refresh token"}},
)
def refresh(body: RefreshRequest, session: SessionDep, settings: SettingsDep) -> TokenResponse:
    """A new access and refresh token for a valid refresh token."""
    try:
        user_id = uuid.UUID(decode_token(settings, body.refresh_token, "refresh"))
    except TokenError as exc:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, str(exc), headers={"WWW-Authenticate": "Bearer"}
        ) from exc
    except ValueError as exc:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "Could not validate credentials",
            headers={"WWW-Authenticate": "Bearer"},
        ) from exc
    user = session.get(User, user_id)
    if user is None or not user.is_active:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "User not found or inactive",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return _tokens(settings, user)
