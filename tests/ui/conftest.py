"""Fixtures for the UI tests: the real app on a real database with real workers."""

from __future__ import annotations

import uuid

import pytest
from psycopg import sql

from absurd_tui.runtime import WorkerPool
from absurd_tui.sdk import Absurd
from absurd_tui.ui.app import AbsurdApp
from absurd_tui.ui.source import LiveSource

from .ui_tasks import build_registry


@pytest.fixture
def anyio_backend():
    # Async Pilot tests run on anyio's pytest plugin (anyio comes with the anthropic
    # dependency), on asyncio, which is what Textual runs on.
    return "asyncio"


@pytest.fixture
def registry():
    return build_registry()


@pytest.fixture
def client(conn, registry):
    c = Absurd(conn, registry=registry)
    c.create_queue("default")
    return c


@pytest.fixture
def make_app(db_dsn, registry, client):
    """Build the app on this test's database; workers and sources are closed after."""
    made: list[tuple[AbsurdApp, WorkerPool | None, LiveSource]] = []

    # The console's own default interval: NOTIFY drives most updates, and a faster
    # tick keeps the process busy enough that every Pilot key press waits (up to 2 s)
    # for it to go idle.
    def make(
        *, workers: int = 2, refresh: float = 1.0, queues: tuple[str, ...] = ("default",)
    ) -> AbsurdApp:
        source = LiveSource(db_dsn, "test-db", registry=registry)
        app = AbsurdApp(source, worker_queues=queues, refresh=refresh)
        pool = None
        if workers:
            pool = WorkerPool(
                db_dsn,
                registry=registry,
                queues=queues,
                concurrency=workers,
                claim_timeout=30,
                poll_interval=0.2,
                on_status=app.on_worker_status,
            )
            app.worker_pool = pool
        made.append((app, pool, source))
        return app

    yield make
    for _, pool, source in made:
        if pool is not None:
            pool.stop(timeout=2)
        source.close()


def task_state(conn, task_id: uuid.UUID | str, queue: str = "default") -> str | None:
    row = conn.execute(
        sql.SQL("SELECT state FROM {} WHERE task_id = %s").format(
            sql.Identifier("absurd", f"t_{queue}")
        ),
        (uuid.UUID(str(task_id)),),
    ).fetchone()
    return row[0] if row else None
