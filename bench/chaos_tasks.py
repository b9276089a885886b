"""The task the chaos bench runs (loaded by its workers with --tasks bench/chaos_tasks.py).

``steps-<queue>`` (one per queue the bench uses) takes ``{"steps": 5, "step_ms": 50}`` and runs that many steps. Each
step first records an effect in ``chaos_effects`` (through a connection of its own,
retried until the database answers, like an external call that is retried) noting
whether the step's checkpoint was already committed: a row with ``committed_before`` is
a committed step that ran again, which must never happen.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import psycopg
from psycopg import sql

from absurd_tui.sdk import TaskContext, register_task

DSN_ENV = "ABSURD_DATABASE_URL"
QUEUES = ("chaos", "outage", "kills")
SETUP_SQL = """
CREATE TABLE IF NOT EXISTS chaos_effects (
    task_id uuid NOT NULL,
    step text NOT NULL,
    run_id uuid NOT NULL,
    committed_before boolean NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
)
"""

_local = threading.local()


def _connection() -> psycopg.Connection:
    conn = getattr(_local, "conn", None)
    if conn is None or conn.closed or conn.broken:
        conn = psycopg.connect(os.environ[DSN_ENV], autocommit=True, connect_timeout=5)
        _local.conn = conn
    return conn


def record_effect(queue: str, ctx: TaskContext, checkpoint: str) -> None:
    query = sql.SQL(
        """INSERT INTO chaos_effects (task_id, step, run_id, committed_before)
           SELECT %s, %s, %s, EXISTS (
               SELECT 1 FROM absurd.{} WHERE task_id = %s AND checkpoint_name = %s
                  AND status = 'committed')"""
    ).format(sql.Identifier(f"c_{queue}"))
    while True:
        try:
            _connection().execute(
                query, (ctx.task_id, checkpoint, ctx.run_id, ctx.task_id, checkpoint)
            )
            return
        except psycopg.OperationalError:
            _local.conn = None
            time.sleep(0.2)


def _register(queue: str) -> None:
    @register_task(f"steps-{queue}", queue=queue)
    def chaos_steps(params: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
        for index in range(int(params.get("steps", 5))):
            name = f"s{index}"

            def step(name: str = name, index: int = index) -> int:
                record_effect(queue, ctx, name)
                time.sleep(int(params.get("step_ms", 50)) / 1000)
                return index

            ctx.step(name, step)
        return {"attempt": ctx.attempt}


for _queue in QUEUES:
    _register(_queue)
