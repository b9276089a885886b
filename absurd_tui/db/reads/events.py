"""Events: the waits pending now and the events emitted, per queue."""

from __future__ import annotations

from datetime import datetime

import psycopg
from psycopg import sql

from ..models import EventInfo, WaitInfo
from ..tables import table
from .common import queues_named


def pending_waits(
    conn: psycopg.Connection, queue: str | None = None, limit: int = 500
) -> list[WaitInfo]:
    """Tasks waiting for an event now, oldest wait first (w_<q> holds only live waits)."""
    waits: list[WaitInfo] = []
    for name in queues_named(conn, queue):
        stmt = sql.SQL(
            "SELECT w.task_id, t.task_name, w.run_id, w.step_name, w.event_name, w.created_at, "
            "w.timeout_at FROM {} AS w LEFT JOIN {} AS t ON t.task_id = w.task_id "
            "ORDER BY w.created_at, w.run_id, w.step_name LIMIT %s"
        ).format(table("w", name), table("t", name))
        for row in conn.execute(stmt, (limit,)):
            waits.append(WaitInfo(name, *row))
    waits.sort(key=lambda w: (w.created_at, str(w.run_id), w.step_name))
    return waits[:limit]


def emitted_events(
    conn: psycopg.Connection, queue: str | None = None, limit: int = 100
) -> list[EventInfo]:
    """Emitted events, newest first. NULL payload rows are await sentinels, not emits."""
    events: list[EventInfo] = []
    for name in queues_named(conn, queue):
        stmt = sql.SQL(
            "SELECT event_name, payload, emitted_at FROM {} WHERE payload IS NOT NULL "
            "ORDER BY emitted_at DESC LIMIT %s"
        ).format(table("e", name))
        for event_name, payload, emitted_at in conn.execute(stmt, (limit,)):
            events.append(EventInfo(name, event_name, payload, emitted_at))
    events.sort(key=lambda e: (e.emitted_at, e.queue, e.event_name), reverse=True)
    return events[:limit]


def event_emitted_at(conn: psycopg.Connection, queue: str, event_name: str) -> datetime | None:
    """When ``event_name`` was emitted on ``queue`` (primary key lookup); None if not yet."""
    row = conn.execute(
        sql.SQL("SELECT emitted_at FROM {} WHERE event_name = %s AND payload IS NOT NULL").format(
            table("e", queue)
        ),
        (event_name,),
    ).fetchone()
    return row[0] if row else None
