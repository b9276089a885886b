"""Tasks that the worker tests load with ``absurd-tui worker --tasks <this file>``.

Every execution worth counting inserts a row into ``cli_test_executions`` through a
connection of its own (DSN in ``CLI_TEST_RECORD_DSN``), so a test can tell how often
each task really ran, in which attempt and in which worker process.
"""

from __future__ import annotations

import os
import time

import psycopg

from absurd_tui.sdk.registry import register_task

CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS cli_test_executions (
    id bigserial PRIMARY KEY,
    task_id uuid NOT NULL,
    attempt integer NOT NULL,
    what text NOT NULL,
    pid integer NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
)
"""


def record_execution(ctx, what: str) -> int:
    with psycopg.connect(os.environ["CLI_TEST_RECORD_DSN"], autocommit=True) as conn:
        conn.execute(
            "INSERT INTO cli_test_executions (task_id, attempt, what, pid) VALUES (%s, %s, %s, %s)",
            (str(ctx.task_id), ctx.attempt, what, os.getpid()),
        )
    return os.getpid()


@register_task("record", queue="scale")
def record(params, ctx):
    """A short task whose one step records that it ran."""
    time.sleep(params.get("sleep", 0))
    pid = ctx.step("record", lambda: record_execution(ctx, "record"))
    return {"n": params.get("n"), "pid": pid}


@register_task("hold", queue="scale")
def hold(params, ctx):
    """Records every start (outside any step), then holds its worker for a while."""
    record_execution(ctx, "hold started")
    time.sleep(params["seconds"])
    return {"pid": os.getpid()}


@register_task("steps")
def steps(params, ctx):
    """Two steps, then success or (with ``fail``) an error: material for log lines."""
    ctx.step("fetch", lambda: 1)
    ctx.step("store", lambda: 2)
    if params.get("fail"):
        raise RuntimeError("asked to fail")
    return "done"


@register_task("resumable", queue="scale")
def resumable(params, ctx):
    """A recorded step, then a hold outside any step (recorded at every start), then a
    second recorded step: shows which steps a resumed execution repeats."""
    ctx.step("first", lambda: record_execution(ctx, "first"))
    record_execution(ctx, "holding")
    time.sleep(params["seconds"])
    ctx.step("second", lambda: record_execution(ctx, "second"))
    return {"pid": os.getpid()}
