"""Task names made without printf (textbook.core.tasks): what the factory changes, what it
keeps, and that the app sets it for its lifetime."""

from __future__ import annotations

import asyncio
import contextvars
import sys
from pathlib import Path
from typing import Any

import pytest
import uvloop
from apitest import make_settings
from fastapi.testclient import TestClient

from textbook.core.tasks import TASK_NAME_PREFIX, name_tasks_without_printf
from textbook.main import create_app
from textbook.rag.store import ChunkStore

OLD_PYTHON = (3, 11)
marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="unset")


async def _name_and_marker() -> tuple[str, str]:
    task = asyncio.current_task()
    assert task is not None
    return task.get_name(), marker.get()


@pytest.mark.parametrize("new_loop", [asyncio.new_event_loop, uvloop.new_event_loop])
def test_tasks_get_numbered_names_and_keep_their_context(new_loop: Any) -> None:
    loop = new_loop()
    try:
        assert name_tasks_without_printf(loop, OLD_PYTHON) is True
        context = contextvars.copy_context()
        context.run(marker.set, "given")
        first = loop.run_until_complete(loop.create_task(_name_and_marker()))
        second = loop.run_until_complete(loop.create_task(_name_and_marker(), context=context))
        named = loop.run_until_complete(loop.create_task(_name_and_marker(), name="mine"))
    finally:
        loop.close()
    assert first == (f"{TASK_NAME_PREFIX}1", "unset")
    assert second == (f"{TASK_NAME_PREFIX}2", "given")  # the caller's context is used
    assert named[0] == "mine"  # a name asked for is kept


def test_an_existing_task_factory_is_kept() -> None:
    loop = asyncio.new_event_loop()
    try:

        def theirs(loop: Any, coro: Any, context: Any = None) -> asyncio.Task[Any]:
            return asyncio.Task(coro, loop=loop, context=context, name="theirs")

        loop.set_task_factory(theirs)
        assert name_tasks_without_printf(loop, OLD_PYTHON) is False
        assert loop.get_task_factory() is theirs
    finally:
        loop.close()


def test_nothing_changes_on_python_3_12_and_later() -> None:
    loop = asyncio.new_event_loop()
    try:
        assert name_tasks_without_printf(loop, (3, 12)) is False
        assert loop.get_task_factory() is None
    finally:
        loop.close()


def test_the_app_names_request_tasks_while_it_runs(
    tmp_path: Path, textbook_store: ChunkStore
) -> None:
    settings = make_settings(tmp_path, database_url=f"sqlite:///{tmp_path / 'db.sqlite'}")
    app = create_app(settings, store=textbook_store)
    loops: list[asyncio.AbstractEventLoop] = []

    @app.get("/task-name")
    async def task_name() -> dict[str, str]:
        # (TestClient's portal names the request's own task; uvicorn does not.)
        loops.append(asyncio.get_running_loop())
        return {"name": (await asyncio.create_task(_name_and_marker()))[0]}

    with TestClient(app) as client:
        name = client.get("/task-name").json()["name"]
        assert loops[0].get_task_factory() is not None
    if sys.version_info < (3, 12):
        assert name.startswith(TASK_NAME_PREFIX)
    assert loops[0].get_task_factory() is None  # removed at shutdown
