"""Helpers for the SDK tests: reading the per-queue tables and driving the clock."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row


def set_now(conn: psycopg.Connection, when: datetime | None) -> None:
    """Pin absurd.current_time() for this session; None restores the real clock."""
    conn.execute(
        "SELECT set_config('absurd.fake_now', %s, false)",
        ("" if when is None else when.isoformat(),),
    )


def rows(
    conn: psycopg.Connection, table: str, queue: str, where: str = "true", params: tuple = ()
) -> list[dict[str, Any]]:
    query = sql.SQL("SELECT * FROM absurd.{} WHERE " + where).format(
        sql.Identifier(f"{table}_{queue}")
    )
    return conn.cursor(row_factory=dict_row).execute(query, params).fetchall()


def task_row(conn: psycopg.Connection, queue: str, task_id: str) -> dict[str, Any]:
    (row,) = rows(conn, "t", queue, "task_id = %s", (task_id,))
    return row


def run_rows(conn: psycopg.Connection, queue: str, task_id: str) -> list[dict[str, Any]]:
    return sorted(rows(conn, "r", queue, "task_id = %s", (task_id,)), key=lambda r: r["attempt"])


def checkpoints(conn: psycopg.Connection, queue: str, task_id: str) -> dict[str, Any]:
    return {
        r["checkpoint_name"]: r["state"]
        for r in rows(conn, "c", queue, "task_id = %s AND status = 'committed'", (task_id,))
    }
