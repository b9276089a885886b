"""Helpers for the runtime tests; the table readers and waiting come from the SDK tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import psycopg
from sdk.helpers import checkpoints, rows, run_rows, set_now, task_row  # noqa: F401


def stays_false(predicate: Callable[[], Any], duration: float, interval: float = 0.05) -> bool:
    """True if ``predicate`` stays false for ``duration`` seconds (for proving absence)."""
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        if predicate():
            return False
        time.sleep(interval)
    return True


def count_effects(conn: psycopg.Connection) -> dict[str, int]:
    return dict(conn.execute("SELECT name, n FROM side_effects").fetchall())
