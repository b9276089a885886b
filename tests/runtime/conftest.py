from __future__ import annotations

import pytest

from absurd_tui.runtime import Absurd, WorkerPool
from absurd_tui.sdk import TaskRegistry


@pytest.fixture
def registry() -> TaskRegistry:
    return TaskRegistry()


@pytest.fixture
def client(conn, registry) -> Absurd:
    c = Absurd(conn, registry=registry)
    c.create_queue()
    return c


@pytest.fixture
def make_pool(db_dsn):
    """Worker pools on this test's database, all stopped at the end."""
    pools: list[WorkerPool] = []

    def make(registry: TaskRegistry, dsn: str | None = None, **kwargs) -> WorkerPool:
        kwargs.setdefault("queues", ("default",))
        kwargs.setdefault("claim_timeout", 30)
        kwargs.setdefault("poll_interval", 0.2)
        pool = WorkerPool(dsn or db_dsn, registry, **kwargs)
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        pool.stop(timeout=2)
