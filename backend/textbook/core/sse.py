"""Server-sent events: framing and heartbeats for long waits on the language model."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.responses import StreamingResponse

# nginx buffers proxied responses unless told not to; caches must not keep a stream.
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
HEARTBEAT = b": heartbeat\n\n"


def sse_event(event: str, data: Any) -> bytes:
    # json.dumps never emits a raw newline, so one data: line is always a complete frame.
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


async def with_heartbeat(source: AsyncIterator[bytes], interval: float) -> AsyncIterator[bytes]:
    """The source's frames, with a comment frame whenever it is silent for `interval`."""
    iterator = aiter(source)
    pending: asyncio.Task[bytes] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(iterator))
            done, _ = await asyncio.wait({pending}, timeout=interval)
            if not done:
                yield HEARTBEAT
                continue
            pending = None
            try:
                frame = done.pop().result()
            except StopAsyncIteration:
                return
            yield frame
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration, Exception):
                await pending
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()


def sse_response(source: AsyncIterator[bytes], heartbeat_seconds: float) -> StreamingResponse:
    return StreamingResponse(
        with_heartbeat(source, heartbeat_seconds),
        media_type="text/event-stream",
        headers=SSE_HEADERS,
    )
