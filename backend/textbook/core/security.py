"""Password hashing (argon2) and signed tokens (JWT, pyjwt)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from textbook.core.config import Settings

TokenType = Literal["access", "refresh"]
_hasher = PasswordHasher()


# Verified against when the e-mail is unknown, so both failures take the same time. A constant
# (the hash of "timing-equaliser-not-a-password" with argon2-cffi's default parameters) rather
# than hashed at import: that cost ~0.2 s at every process start (each gunicorn worker, each
# `textbook` command). tests/backend/core/test_core_security.py checks it still matches the
# hasher's parameters.
_DUMMY_HASH = (
    "$argon2id$v=19$m=65536,t=3,p=4$1qhO7PqSIloEQ8KLT+hCMQ"
    "$BliGo67izqz9PzjtZ8FPQC6VohJIL3UY5m2sWw6yEi4"
)


class TokenError(Exception):
    """A token that cannot be accepted; the message is safe to show the client."""


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password: str, hashed: str | None) -> bool:
    try:
        return _hasher.verify(hashed or _DUMMY_HASH, password) and hashed is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int  # seconds until the access token expires


@dataclass(frozen=True)
class TokenClaims:
    subject: str
    version: int  # the user's token_version when it was issued (0 when it carries none)


def create_token(settings: Settings, subject: str, token_type: TokenType, version: int) -> str:
    now = datetime.now(UTC)
    lifetime = (
        timedelta(minutes=settings.access_token_minutes)
        if token_type == "access"  # noqa: S105 - a token kind
        else timedelta(days=settings.refresh_token_days)
    )
    claims = {
        "sub": subject,
        "type": token_type,
        "iat": now,
        "exp": now + lifetime,
        "jti": uuid.uuid4().hex,
        "ver": version,
    }
    return jwt.encode(
        claims, settings.secret_key.get_secret_value(), algorithm=settings.jwt_algorithm
    )


def create_token_pair(settings: Settings, subject: str, version: int) -> TokenPair:
    return TokenPair(
        access_token=create_token(settings, subject, "access", version),
        refresh_token=create_token(settings, subject, "refresh", version),
        expires_in=settings.access_token_minutes * 60,
    )


def decode_token(settings: Settings, token: str, expected_type: TokenType) -> TokenClaims:
    """The token's subject and version; TokenError when it is expired, forged or of the
    wrong type. (Whether its version is still the user's is for the caller to check.)"""
    keys = [settings.secret_key.get_secret_value()]
    if settings.secret_key_previous is not None:
        # Tokens signed before a key rotation stay valid until they expire.
        keys.append(settings.secret_key_previous.get_secret_value())
    last_error: Exception | None = None
    for key in keys:
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[settings.jwt_algorithm],
                options={"require": ["exp", "iat", "sub", "type"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise TokenError("Token has expired") from exc
        except jwt.InvalidTokenError as exc:
            last_error = exc
            continue
        if claims.get("type") != expected_type:
            raise TokenError(f"Expected an {expected_type} token")
        subject, version = claims.get("sub"), claims.get("ver", 0)
        if not isinstance(subject, str) or type(version) is not int:
            raise TokenError("Could not validate credentials")
        return TokenClaims(subject, version)
    raise TokenError("Could not validate credentials") from last_error
