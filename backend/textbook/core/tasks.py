"""Asyncio task names made without the C library's printf.

Python 3.11 names every new task "Task-<n>" through PyUnicode_FromFormat, which formats the
number with sprintf(). numpy's wheels bundle libquadmath (OpenBLAS needs libgfortran, which
needs it), and loading libquadmath registers printf hooks for __float128; from then on glibc
takes its slow path for every printf-family call in the process. uvicorn makes a task per
request, so each request paid for that: on 2026-11-29 a bare FastAPI app served /health
0.6-1.4 us slower per request in a process that had only loaded libquadmath, and naming the
tasks in Python took the difference back; in this app (numpy comes with qdrant-client), whose
factory call costs some of it again, 0.4 us a request net (in-process harness, median of six
processes each).

Python 3.12 formats a task's name only when it is asked for, so there nothing is changed.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
from collections.abc import Coroutine, Generator
from contextvars import Context
from typing import Any

TASK_NAME_PREFIX = "textbook-"


def name_tasks_without_printf(
    loop: asyncio.AbstractEventLoop, version: tuple[int, int] | None = None
) -> bool:
    """Give `loop` a task factory that names tasks itself ("textbook-1", "textbook-2", ...),
    unless the Python is 3.12 or newer or the loop has a task factory already (it is kept).
    True when the factory was set."""
    if (version or sys.version_info[:2]) >= (3, 12) or loop.get_task_factory() is not None:
        return False
    numbers = itertools.count(1)
    task = asyncio.Task

    def factory(
        loop: asyncio.AbstractEventLoop,
        coro: Generator[Any, None, Any] | Coroutine[Any, Any, Any],
        context: Context | None = None,
    ) -> asyncio.Task[Any]:
        return task(coro, loop=loop, context=context, name=f"{TASK_NAME_PREFIX}{next(numbers)}")

    loop.set_task_factory(factory)
    return True
