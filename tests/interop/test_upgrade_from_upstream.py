"""`absurd-tui init` over a database that upstream Absurd installed, with work in flight.

The official Python SDK (absurd-sdk 0.5.1) spawns tasks on upstream's own schema and runs
them part of the way, leaving one in every state: pending, running (a worker that vanished
holding the lease), sleeping on a timer, on an event, on an event with a timeout and in a
retry backoff, completed, failed and cancelled, with checkpoints, waits and an emitted
event. Our init upgrades the database in place; every row is still there, unchanged, and
the work is then finished, by our workers or by the official worker.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import absurd_sdk
import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row

import absurd_tui
from absurd_tui.config import Settings
from absurd_tui.db import SchemaError, open_database

from . import upstream

Q = "upgrade"
T0 = datetime(2031, 5, 6, 7, 0, 0, tzinfo=UTC)
TIMEOUTS = (absurd_sdk.TimeoutError, absurd_tui.TimeoutError)


class Work:
    """Handlers that behave the same under either SDK, and a record of what ran."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.healthy = False

    def register(self, app: Any) -> None:
        @app.register_task("job")
        def job(params, ctx):
            value = ctx.step("first", lambda: self.calls.append(f"first:{params['n']}") or 10)
            return {"n": params["n"], "first": value}

        @app.register_task("napper")
        def napper(params, ctx):
            ctx.step("before", lambda: self.calls.append("nap-before") or 1)
            ctx.sleep_for("nap", 3600)
            return "rested"

        @app.register_task("waiter")
        def waiter(params, ctx):
            ctx.step("before", lambda: self.calls.append(f"wait-before:{params['event']}") or 1)
            return ctx.await_event(params["event"])

        @app.register_task("impatient")
        def impatient(params, ctx):
            try:
                return {"payload": ctx.await_event("never", timeout=600)}
            except TIMEOUTS:
                return {"timed_out": True}

        @app.register_task("flaky")
        def flaky(params, ctx):
            ctx.step("prepare", lambda: self.calls.append("flaky-prepare") or "ready")
            if "flaky-failed" not in self.calls:
                self.calls.append("flaky-failed")
                raise RuntimeError("first attempt fails")
            return "second try"

        @app.register_task("broken")
        def broken(params, ctx):
            if not self.healthy:
                raise KeyError("not yet")
            return "fixed"


def set_clock(conn: psycopg.Connection, monkeypatch, when: datetime) -> None:
    conn.execute("SELECT set_config('absurd.fake_now', %s, false)", (when.isoformat(),))
    monkeypatch.setattr(absurd_sdk, "_get_current_time", lambda: when)


def snapshot(conn: psycopg.Connection) -> dict[str, list[dict]]:
    out = {}
    for prefix, key in (
        ("t", "task_id"),
        ("r", "run_id"),
        ("c", "task_id, checkpoint_name"),
        ("e", "event_name"),
        ("w", "run_id, step_name"),
    ):
        # As JSON: a wait without timeout sleeps until 'infinity', which Python cannot hold.
        query = sql.SQL("SELECT to_jsonb(x) FROM absurd.{} x ORDER BY " + key).format(
            sql.Identifier(f"{prefix}_{Q}")
        )
        out[prefix] = [row for (row,) in conn.execute(query).fetchall()]
    out["queues"] = (
        conn.cursor(row_factory=dict_row)
        .execute("SELECT * FROM absurd.queues ORDER BY queue_name")
        .fetchall()
    )
    return out


def task_states(conn: psycopg.Connection) -> dict[str, str]:
    query = sql.SQL("SELECT task_id::text, state FROM absurd.{}").format(sql.Identifier(f"t_{Q}"))
    return dict(conn.execute(query).fetchall())


def half_run_on_upstream(conn: psycopg.Connection, work: Work) -> dict[str, str]:
    app = absurd_sdk.Absurd(conn, queue_name=Q)
    app.create_queue()
    work.register(app)
    ids: dict[str, str] = {}

    def spawn(key: str, name: str, params: Any, **options: Any) -> None:
        ids[key] = str(app.spawn(name, params, **options)["task_id"])

    spawn("timer", "napper", {})
    spawn("waiter", "waiter", {"event": "go"})
    spawn("impatient", "impatient", {})
    spawn("retrying", "flaky", {}, retry_strategy={"kind": "fixed", "base_seconds": 30})
    spawn("completed", "job", {"n": 1})
    spawn("failed", "broken", {}, max_attempts=1)
    app.work_batch(worker_id="upstream-worker", claim_timeout=60, batch_size=10)

    spawn("cancelled", "job", {"n": 2})
    app.cancel_task(ids["cancelled"])
    app.emit_event("already", {"was": "emitted"})

    # A worker that claimed a task, wrote its first step and vanished with the lease.
    spawn("running", "job", {"n": 3})
    (claimed,) = app.claim_tasks(batch_size=1, claim_timeout=60, worker_id="vanished")
    conn.execute(
        "SELECT absurd.set_task_checkpoint_state(%s, %s, %s, %s, %s, %s)",
        (Q, claimed["task_id"], "first", "10", claimed["run_id"], 60),
    )
    work.calls.append("first:3")

    spawn("pending", "job", {"n": 4}, idempotency_key="only-once")
    return ids


@pytest.mark.parametrize("finisher", ["absurd-tui", "official"])
@pytest.mark.parametrize("version", upstream.VERSIONS)
def test_init_upgrades_an_upstream_database_with_work_in_flight(
    empty_db_dsn, monkeypatch, version, finisher
):
    with psycopg.connect(empty_db_dsn, autocommit=True) as conn:
        upstream.install(conn, version)
        set_clock(conn, monkeypatch, T0)
        work = Work()
        ids = half_run_on_upstream(conn, work)
        assert task_states(conn) == {
            ids["timer"]: "sleeping",
            ids["waiter"]: "sleeping",
            ids["impatient"]: "sleeping",
            ids["retrying"]: "sleeping",
            ids["completed"]: "completed",
            ids["failed"]: "failed",
            ids["cancelled"]: "cancelled",
            ids["running"]: "running",
            ids["pending"]: "pending",
        }
        before = snapshot(conn)
        assert len(before["w"]) == 2 and len(before["e"]) >= 3

    database = open_database(Settings(dsn=empty_db_dsn), install=True)  # what `init` does
    assert database.schema.current and database.schema.version == "0.5.1"

    with psycopg.connect(empty_db_dsn, autocommit=True) as conn:
        assert snapshot(conn) == before, "the upgrade must keep every row as it was"
        assert conn.execute("SELECT absurd.get_engine_revision()").fetchone()[0] is not None

        app: Any
        if finisher == "official":
            app = absurd_sdk.Absurd(conn, queue_name=Q)
        else:
            app = absurd_tui.Absurd(conn, queue_name=Q, registry=absurd_tui.TaskRegistry())
        work.register(app)
        work.healthy = True

        again = app.spawn("job", {"n": 99}, idempotency_key="only-once")
        assert str(again["task_id"]) == ids["pending"]
        spawn_late = app.spawn("waiter", {"event": "already"})
        app.emit_event("go", {"ok": 1})
        set_clock(conn, monkeypatch, T0 + timedelta(hours=2))
        app.retry_task(ids["failed"], max_attempts=2)
        for _ in range(6):
            app.work_batch(worker_id=f"{finisher}-worker", claim_timeout=60, batch_size=10)

        results = {key: app.fetch_task_result(task_id) for key, task_id in ids.items()}
        assert {key: r.state for key, r in results.items()} == {
            "timer": "completed",
            "waiter": "completed",
            "impatient": "completed",
            "retrying": "completed",
            "completed": "completed",
            "failed": "completed",
            "cancelled": "cancelled",
            "running": "completed",
            "pending": "completed",
        }
        assert results["timer"].result == "rested"
        assert results["waiter"].result == {"ok": 1}
        assert results["impatient"].result == {"timed_out": True}
        assert results["retrying"].result == "second try"
        assert results["failed"].result == "fixed"
        assert results["running"].result == {"n": 3, "first": 10}
        assert results["pending"].result == {"n": 4, "first": 10}
        assert app.fetch_task_result(spawn_late["task_id"]).result == {"was": "emitted"}
        # Work checkpointed before the upgrade was not done again after it.
        for step in ("first:1", "first:3", "nap-before", "wait-before:go", "flaky-prepare"):
            assert work.calls.count(step) == 1, (step, work.calls)
        waits = sql.SQL("SELECT count(*) FROM absurd.{}").format(sql.Identifier(f"w_{Q}"))
        assert conn.execute(waits).fetchone()[0] == 0


def test_what_absurdctl_migrate_does_to_our_schema_and_how_init_restores_it(empty_db_dsn):
    """`absurdctl migrate` finds '0.5.1' and does nothing; forced with `--from 0.4.0` it
    applies upstream's 0.4.0 -> 0.5.0 -> 0.5.1 migrations (the SQL below is exactly what it
    runs). That replaces some of our functions with upstream's: the database keeps working,
    our tools notice and ask for `init`, and init restores our engine keeping the data."""
    database = open_database(Settings(dsn=empty_db_dsn), install=True)
    assert database.schema.current
    with psycopg.connect(empty_db_dsn, autocommit=True) as conn:
        conn.execute("SELECT absurd.create_queue('kept')")
        before = conn.execute(
            "SELECT task_id FROM absurd.spawn_task('kept', 'job', '{}'::jsonb)"
        ).fetchone()[0]
        conn.execute(upstream.migration_sql("0.5.1", "0.4.0-0.5.0.sql"))
        conn.execute(upstream.migration_sql("0.5.1", "0.5.0-0.5.1.sql"))
        assert conn.execute("SELECT absurd.get_schema_version()").fetchone()[0] == "0.5.1"
        assert conn.execute("SELECT absurd.get_engine_revision()").fetchone()[0] is None
        # Still usable as it stands: the replaced functions are upstream's own.
        claimed = conn.execute("SELECT task_id, run_id FROM absurd.claim_task('kept', 'w', 30, 1)")
        task_id, run_id = claimed.fetchone()
        assert task_id == before
        conn.execute("SELECT absurd.complete_run('kept', %s, '\"done\"'::jsonb)", (run_id,))

    with pytest.raises(SchemaError, match="absurd-tui init"):
        open_database(Settings(dsn=empty_db_dsn))
    restored = open_database(Settings(dsn=empty_db_dsn), install=True)
    assert restored.schema.current and not restored.schema.modified
    with psycopg.connect(empty_db_dsn, autocommit=True) as conn:
        state = conn.execute(
            "SELECT state FROM absurd.get_task_result('kept', %s)", (before,)
        ).fetchone()[0]
        assert state == "completed"
        # Our own behaviour is back, e.g. strategies checked our way and NOTIFY on spawn.
        conn.execute("LISTEN absurd_ready")
        conn.execute("SELECT absurd.spawn_task('kept', 'job', '{}'::jsonb)")
        assert [n.payload for n in conn.notifies(timeout=5, stop_after=1)] == ["kept"]
