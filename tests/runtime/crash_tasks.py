"""A multi-step task whose steps leave side effects in a table, for the crash test.

Shared by the worker subprocess that gets SIGKILLed and the pool that finishes the job.
"""

from __future__ import annotations

import time

import psycopg

from absurd_tui.sdk import TaskRegistry

SETUP_SQL = "CREATE TABLE IF NOT EXISTS side_effects (name text PRIMARY KEY, n integer NOT NULL)"


def bump(dsn: str, name: str) -> None:
    """A side effect outside the engine: its own connection, committed at once."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO side_effects (name, n) VALUES (%s, 1) "
            "ON CONFLICT (name) DO UPDATE SET n = side_effects.n + 1",
            (name,),
        )


def make_registry(dsn: str, *, hang_in_step_three: bool) -> TaskRegistry:
    registry = TaskRegistry()

    @registry.register_task("crashy", default_max_attempts=5)
    def crashy(params, ctx):
        for name in ("one", "two"):
            ctx.step(name, lambda name=name: bump(dsn, name) or name)

        def three():
            bump(dsn, "three")
            if hang_in_step_three:
                time.sleep(600)  # the test kills the process here
            return "three"

        ctx.step("three", three)
        ctx.step("four", lambda: bump(dsn, "four") or "four")
        return {"attempt": ctx.attempt}

    return registry
