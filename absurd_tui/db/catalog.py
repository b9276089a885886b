"""The queues the database holds, and its clock: what every read starts from."""

from __future__ import annotations

from datetime import datetime

import psycopg

from .query import scalar


def queue_names(conn: psycopg.Connection) -> list[str]:
    """Every queue, by name."""
    return [
        row[0] for row in conn.execute("SELECT queue_name FROM absurd.queues ORDER BY queue_name")
    ]


def queues_named(conn: psycopg.Connection, queue: str | None) -> list[str]:
    """``[queue]`` if it exists (every queue for None), else no queue."""
    names = queue_names(conn)
    if queue is None:
        return names
    return [queue] if queue in names else []


def db_now(conn: psycopg.Connection) -> datetime:
    """The engine's clock (absurd.current_time(), which honours absurd.fake_now)."""
    return scalar(conn, "SELECT absurd.current_time()")
