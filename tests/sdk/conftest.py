from __future__ import annotations

import pytest

from absurd_tui.sdk import Absurd, TaskRegistry


@pytest.fixture
def registry() -> TaskRegistry:
    return TaskRegistry()


@pytest.fixture
def client(conn, registry) -> Absurd:
    """A client on the test's own connection (so SET absurd.fake_now applies to it),
    with a registry of its own and the queue "default" created."""
    c = Absurd(conn, registry=registry)
    c.create_queue()
    return c
