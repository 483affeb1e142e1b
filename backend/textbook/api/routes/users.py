"""The signed-in user."""

from __future__ import annotations

from fastapi import APIRouter

from textbook.api.deps import CurrentUser
from textbook.api.schemas import UserOut
from textbook.models import User

router = APIRouter(prefix="/users", tags=["users"])


@router.get("/me", response_model=UserOut)
def read_me(user: CurrentUser) -> User:
    return user
