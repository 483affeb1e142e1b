"""The framework's floor for bench/http_server.py: a bare FastAPI app with one /health route,
written like textbook's own liveness route (async, returns a constant).

Served by the same gunicorn settings as textbook (`-c python:textbook.gunicorn_conf`).
uvicorn's access logger is switched off here as textbook's logging setup does, so the
comparison charges the server nothing for access logs on either side.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI

logging.getLogger("uvicorn.access").disabled = True

app = FastAPI()


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}
