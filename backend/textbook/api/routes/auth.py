"""Registration, login (OAuth2 password flow), token refresh and logout."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Response, status
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from textbook.api.deps import CurrentUser, SessionDep, SettingsDep, user_for_token
from textbook.api.responses import WITH_BODY, errors
from textbook.api.schemas import RefreshRequest, RegisterRequest, TokenResponse, UserOut
from textbook.core.security import create_token_pair, hash_password, verify_password
from textbook.models import User

router = APIRouter(prefix="/auth", tags=["auth"])


def _tokens(settings: SettingsDep, user: User) -> TokenResponse:
    pair = create_token_pair(settings, str(user.id), user.token_version)
    return TokenResponse(
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        expires_in=pair.expires_in,
    )


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=UserOut,
    operation_id="register",
    responses=errors(409, *WITH_BODY, e409="E-mail already registered"),
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
    operation_id="login",
    responses=errors(
        401, 403, *WITH_BODY, e401="Wrong e-mail or password", e403="Account disabled"
    ),
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
    operation_id="refreshTokens",
    responses=errors(401, *WITH_BODY, e401="Invalid, expired or revoked refresh token"),
)
def refresh(body: RefreshRequest, session: SessionDep, settings: SettingsDep) -> TokenResponse:
    """A new access and refresh token for a valid refresh token (not one issued before the
    user's last logout)."""
    return _tokens(settings, user_for_token(session, settings, body.refresh_token, "refresh"))


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="logout",
    responses=errors(401, 429),
)
def logout(user: CurrentUser, session: SessionDep) -> Response:
    """Log out everywhere: every access and refresh token issued to this user so far stops
    working (401 "Token has been revoked"); logging in again gives new ones."""
    session.execute(
        update(User).where(User.id == user.id).values(token_version=User.token_version + 1)
    )
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
