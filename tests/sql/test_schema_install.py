"""Loading sql/absurd.sql: one execute() on an empty database, and re-applying it over live
data keeps every row and every row keeps working."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest
from psycopg import sql

from absurd_tui.db import schema

from .helpers import (
    FakeClock,
    await_event,
    cancel,
    claim,
    claim_one,
    complete,
    create_queue,
    emit,
    fail,
    retry,
    run_row,
    schedule,
    select_rows,
    set_checkpoint,
    spawn,
    table,
    task_result,
    task_row,
)

VERSION = "0.4.0+absurd-tui.2"


def schema_sql_text() -> str:
    return schema.schema_sql()


def test_the_file_loads_with_a_single_execute_on_an_empty_database(empty_db_dsn):
    with psycopg.connect(empty_db_dsn, autocommit=True) as conn:
        conn.execute(schema_sql_text())
        assert conn.execute("SELECT absurd.get_schema_version()").fetchone()[0] == VERSION
        create_queue(conn)
        spawned = spawn(conn)
        assert claim_one(conn)["run_id"] == spawned.run_id


def test_the_file_loads_inside_one_transaction(empty_db_dsn):
    with psycopg.connect(empty_db_dsn) as conn:
        conn.execute(schema_sql_text())
        conn.rollback()
        assert conn.execute("SELECT to_regnamespace('absurd')").fetchone()[0] is None
        conn.rollback()
        conn.execute(schema_sql_text())
        conn.commit()
        assert conn.execute("SELECT absurd.get_schema_version()").fetchone()[0] == VERSION


def test_the_file_has_no_psql_meta_commands():
    for number, line in enumerate(schema_sql_text().splitlines(), start=1):
        assert not line.lstrip().startswith("\\"), f"line {number}: {line!r}"


def test_install_twice_on_an_empty_database(empty_db_dsn):
    with psycopg.connect(empty_db_dsn, autocommit=True) as conn:
        assert schema.install(conn).version == VERSION
        assert schema.install(conn).version == VERSION


def populate(conn, clock) -> dict:
    """Two queues with a task in every state, checkpoints, waits and events."""
    create_queue(conn, "jobs")
    create_queue(conn, 'Other "queue"')
    tasks = {
        "running": spawn(conn, name="r"),
        "timer": spawn(conn, name="t"),
        "waiting": spawn(conn, name="w"),
        "completed": spawn(conn, name="c"),
        "failed": spawn(conn, name="f", max_attempts=1),
        "retrying": spawn(conn, name="rt", retry_strategy={"kind": "fixed", "base_seconds": 30}),
    }
    assert len(claim(conn, qty=20, timeout=0)) == len(tasks)
    for name, spawned in tasks.items():
        set_checkpoint(conn, spawned.task_id, "step", {"of": name}, spawned.run_id)
    schedule(conn, tasks["timer"].run_id, clock.now + timedelta(hours=1))
    await_event(conn, tasks["waiting"].task_id, tasks["waiting"].run_id, "go", step="wait")
    complete(conn, tasks["completed"].run_id, {"done": True})
    fail(conn, tasks["failed"].run_id)
    fail(conn, tasks["retrying"].run_id)
    tasks["cancelled"] = spawn(conn, name="x")
    cancel(conn, tasks["cancelled"].task_id)
    tasks["pending"] = spawn(conn, name="p", params={"k": "pending"}, idempotency_key="idem")
    emit(conn, "already", {"was": "emitted"})
    spawn(conn, 'Other "queue"', name="elsewhere")
    return tasks


def snapshot(conn) -> dict:
    out = {"queues": select_rows(conn, sql.SQL("SELECT * FROM absurd.queues ORDER BY queue_name"))}
    for q in ("jobs", 'Other "queue"'):
        for prefix, key in (
            ("t", "task_id"),
            ("r", "run_id"),
            ("c", "task_id, checkpoint_name"),
            ("e", "event_name"),
            ("w", "run_id, step_name"),
        ):
            out[(q, prefix)] = select_rows(
                conn, sql.SQL("SELECT * FROM {} ORDER BY " + key).format(table(prefix, q))
            )
    return out


def test_reapplying_the_schema_keeps_all_data_and_it_keeps_working(conn):
    clock = FakeClock(conn)
    tasks = populate(conn, clock)
    states = {name: task_row(conn, s.task_id)["state"] for name, s in tasks.items()}
    assert states == {
        "pending": "pending",
        "running": "running",
        "timer": "sleeping",
        "waiting": "sleeping",
        "completed": "completed",
        "failed": "failed",
        "cancelled": "cancelled",
        "retrying": "sleeping",
    }
    before = snapshot(conn)

    assert schema.install(conn).version == VERSION
    conn.execute(schema_sql_text())  # and once more as a plain execute
    assert snapshot(conn) == before

    # Everything still works on the re-applied schema.
    pending = claim_one(conn, timeout=0)
    assert pending["task_id"] == tasks["pending"].task_id
    complete(conn, pending["run_id"], "after upgrade")
    complete(conn, tasks["running"].run_id, "still running fine")

    emit(conn, "go", {"woken": True})
    assert run_row(conn, tasks["waiting"].run_id)["state"] == "pending"
    woken = claim_one(conn, timeout=0)
    assert woken["event_payload"] == {"woken": True}
    complete(conn, woken["run_id"])

    clock.advance(3600)
    due = {r["task_id"] for r in claim(conn, qty=5, timeout=0)}
    assert due == {tasks["timer"].task_id, tasks["retrying"].task_id}

    retried = retry(conn, tasks["failed"].task_id)
    assert retried.attempt == 2
    again = spawn(conn, idempotency_key="idem")
    assert (again.task_id, again.created) == (tasks["pending"].task_id, False)

    for name in ("pending", "running", "waiting", "completed"):
        assert task_result(conn, tasks[name].task_id)["state"] == "completed", name
    assert task_row(conn, tasks["cancelled"].task_id)["state"] == "cancelled"
    assert conn.execute("SELECT absurd.get_schema_version()").fetchone()[0] == VERSION


def test_reapplying_keeps_queue_policies(conn):
    create_queue(conn)
    conn.execute(
        "SELECT absurd.set_queue_policy(%s, %s::jsonb)", ("jobs", '{"cleanup_ttl": "2 days"}')
    )
    schema.install(conn)
    ttl = conn.execute("SELECT cleanup_ttl FROM absurd.get_queue_policy('jobs')").fetchone()[0]
    assert ttl == timedelta(days=2)


def test_reapplying_keeps_per_queue_indexes(conn):
    create_queue(conn)
    names = "SELECT indexname FROM pg_indexes WHERE schemaname = 'absurd' ORDER BY 1"
    before = conn.execute(names).fetchall()
    schema.install(conn)
    assert conn.execute(names).fetchall() == before


@pytest.mark.parametrize("mode", ["install", "execute"])
def test_reapplying_while_a_worker_holds_a_claim(conn, connect, mode):
    create_queue(conn)
    spawned = spawn(conn)
    worker = connect()
    claim_one(worker)
    if mode == "install":
        schema.install(conn)
    else:
        conn.execute(schema_sql_text())
    complete(worker, spawned.run_id, "ok")
    assert task_row(conn, spawned.task_id)["state"] == "completed"
