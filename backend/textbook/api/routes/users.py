"""The signed-in user."""

from __future__ import annotations

from fastapi import APIRouter

from textbook.api.deps import CurrentUser
from textbook.api.responses import errors
from textbook.api.schemas import UserOut
from textbook.models import User

router = APIRouter(prefix="/users", tags=["users"])


@router.get("/me", response_model=UserOut, operation_id="readMe", responses=errors(401, 429))
def read_me(user: CurrentUser) -> User:
    return user
