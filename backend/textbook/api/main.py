"""The /api/v1 router: every area's routes, per-IP rate limit on all but readiness."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from textbook.api.deps import limit_per_ip
from textbook.api.routes import admin, auth, chapters, chat, health, search, users

api_router = APIRouter()
api_router.include_router(health.router)
limited = APIRouter(dependencies=[Depends(limit_per_ip)])
for area in (auth, users, chapters, search, chat, admin):
    limited.include_router(area.router)
api_router.include_router(limited)
