"""cleanup_tasks, cleanup_events and cleanup_all_queues."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from psycopg import sql

from .helpers import (
    T0,
    FakeClock,
    await_event,
    cancel,
    checkpoint_rows,
    claim_one,
    complete,
    count,
    create_queue,
    emit,
    event_row,
    fail,
    raises_db,
    runs_of,
    set_checkpoint,
    spawn,
    table,
    wait_rows,
)


@pytest.fixture
def clock(conn):
    create_queue(conn)
    return FakeClock(conn)


def cleanup_tasks(conn, ttl, limit=None, q="jobs") -> int:
    if limit is None:
        return conn.execute("SELECT absurd.cleanup_tasks(%s, %s)", (q, ttl)).fetchone()[0]
    return conn.execute("SELECT absurd.cleanup_tasks(%s, %s, %s)", (q, ttl, limit)).fetchone()[0]


def cleanup_events(conn, ttl, limit=None, q="jobs") -> int:
    if limit is None:
        return conn.execute("SELECT absurd.cleanup_events(%s, %s)", (q, ttl)).fetchone()[0]
    return conn.execute("SELECT absurd.cleanup_events(%s, %s, %s)", (q, ttl, limit)).fetchone()[0]


def task_ids(conn, q="jobs") -> set:
    return {r[0] for r in conn.execute(sql.SQL("SELECT task_id FROM {}").format(table("t", q)))}


def finish(conn, clock, at_offset: float, how: str, q="jobs", **options):
    """A task brought to a terminal state at T0 + at_offset seconds, with a checkpoint."""
    clock.set(T0 + timedelta(seconds=at_offset))
    spawned = spawn(conn, q, max_attempts=1, **options)
    if how == "cancelled":
        cancel(conn, spawned.task_id, q=q)
        return spawned
    run = claim_one(conn, q, timeout=0)
    set_checkpoint(conn, spawned.task_id, "step", "v", run["run_id"], q=q)
    if how == "completed":
        complete(conn, run["run_id"], "ok", q=q)
    else:
        fail(conn, run["run_id"], q=q)
    return spawned


def test_cleanup_tasks_deletes_terminal_tasks_older_than_the_ttl(conn, clock):
    a = finish(conn, clock, 0, "completed")
    b = finish(conn, clock, 1, "failed")
    c = finish(conn, clock, 2, "cancelled")
    d = finish(conn, clock, 50, "completed")
    clock.set(T0 + timedelta(seconds=60))
    live = {spawn(conn).task_id, spawn(conn).task_id}
    claim_one(conn, timeout=0)  # one pending, one running: neither is terminal

    clock.set(T0 + timedelta(seconds=100))
    assert cleanup_tasks(conn, 60) == 3
    assert task_ids(conn) == {d.task_id} | live
    for gone in (a, b, c):
        assert runs_of(conn, gone.task_id) == []
        assert checkpoint_rows(conn, gone.task_id) == {}
    assert checkpoint_rows(conn, d.task_id) != {}

    assert cleanup_tasks(conn, 0) == 1
    assert task_ids(conn) == live
    assert cleanup_tasks(conn, 0) == 0


def test_cleanup_uses_the_terminal_time_of_the_last_attempt(conn, clock):
    spawned = spawn(conn, max_attempts=2)
    first = claim_one(conn, timeout=0)
    fail(conn, first["run_id"])  # attempt 1 fails at T0
    clock.set(T0 + timedelta(seconds=80))
    second = claim_one(conn, timeout=0)
    complete(conn, second["run_id"])  # the task ends at T0+80
    clock.set(T0 + timedelta(seconds=100))
    assert cleanup_tasks(conn, 60) == 0
    assert task_ids(conn) == {spawned.task_id}
    clock.set(T0 + timedelta(seconds=141))
    assert cleanup_tasks(conn, 60) == 1


def test_cleanup_uses_cancelled_at_for_cancelled_tasks(conn, clock):
    spawned = spawn(conn)
    claim_one(conn, timeout=0)
    clock.set(T0 + timedelta(seconds=90))
    cancel(conn, spawned.task_id)
    clock.set(T0 + timedelta(seconds=100))
    assert cleanup_tasks(conn, 60) == 0
    clock.set(T0 + timedelta(seconds=151))
    assert cleanup_tasks(conn, 60) == 1


def test_cleanup_tasks_respects_the_limit_oldest_first(conn, clock):
    finish(conn, clock, 0, "completed")
    middle = finish(conn, clock, 10, "failed")
    new = finish(conn, clock, 20, "cancelled")
    clock.set(T0 + timedelta(seconds=100))
    assert cleanup_tasks(conn, 0, 1) == 1
    assert task_ids(conn) == {middle.task_id, new.task_id}
    assert cleanup_tasks(conn, 0, 1) == 1
    assert task_ids(conn) == {new.task_id}


def test_cleanup_tasks_removes_wait_rows_too(conn, clock):
    spawned = finish(conn, clock, 0, "completed")
    # Finished tasks normally have no waits left; a stray one must not survive the task.
    conn.execute(
        sql.SQL(
            "INSERT INTO {} (run_id, step_name, task_id, event_name, timeout_at, created_at)"
            " VALUES (%s, 'w', %s, 'e', NULL, absurd.current_time())"
        ).format(table("w")),
        (spawned.run_id, spawned.task_id),
    )
    clock.advance(100)
    assert cleanup_tasks(conn, 10) == 1
    assert wait_rows(conn, task_id=spawned.task_id) == []


def test_cleanup_never_touches_live_tasks(conn, clock):
    waiting = spawn(conn, name="waiting")
    run = claim_one(conn, timeout=0)
    await_event(conn, waiting.task_id, run["run_id"], "e", step="w")
    spawn(conn, name="pending")
    clock.advance(10 * 365 * 24 * 3600)
    assert cleanup_tasks(conn, 0) == 0
    assert count(conn, "t") == 2
    assert len(wait_rows(conn, task_id=waiting.task_id)) == 1


def test_cleanup_releases_the_idempotency_key(conn, clock):
    first = finish(conn, clock, 0, "completed", idempotency_key="nightly")
    clock.advance(100)
    assert cleanup_tasks(conn, 10) == 1
    again = spawn(conn, idempotency_key="nightly")
    assert again.created is True
    assert again.task_id != first.task_id


@pytest.mark.parametrize("ttl", [-1, None])
def test_cleanup_tasks_rejects_a_negative_or_missing_ttl(conn, clock, ttl):
    finish(conn, clock, 0, "completed")
    with raises_db("P0001", "TTL must be a non-negative number of seconds"):
        cleanup_tasks(conn, ttl)
    assert count(conn, "t") == 1


def test_cleanup_events_by_emitted_at(conn, clock):
    emit(conn, "old", 1)
    clock.set(T0 + timedelta(seconds=50))
    emit(conn, "recent", 2)
    waiter = spawn(conn)
    run = claim_one(conn, timeout=0)
    await_event(conn, waiter.task_id, run["run_id"], "sentinel-only", step="w")
    assert event_row(conn, "sentinel-only")["payload"] is None

    clock.set(T0 + timedelta(seconds=100))
    assert cleanup_events(conn, 60) == 2
    assert event_row(conn, "old") is None
    assert event_row(conn, "sentinel-only") is None
    assert event_row(conn, "recent")["payload"] == 2


def test_cleanup_events_limit_takes_sentinels_first(conn, clock):
    emit(conn, "real", 1)
    waiter = spawn(conn)
    run = claim_one(conn, timeout=0)
    await_event(conn, waiter.task_id, run["run_id"], "pending-event", step="w")
    clock.advance(100)
    assert cleanup_events(conn, 0, 1) == 1
    assert event_row(conn, "pending-event") is None
    assert event_row(conn, "real") is not None
    assert cleanup_events(conn, 0, 1) == 1
    assert count(conn, "e") == 0


def test_cleanup_all_queues_uses_each_queues_policy(conn, clock):
    create_queue(conn, "short")
    create_queue(conn, "long")
    conn.execute(
        "SELECT absurd.set_queue_policy(%s, %s::jsonb)",
        ("short", json.dumps({"cleanup_ttl": "1 hour"})),
    )
    conn.execute(
        "SELECT absurd.set_queue_policy(%s, %s::jsonb)",
        ("long", json.dumps({"cleanup_ttl": "1 day"})),
    )
    for q in ("short", "long"):
        finish(conn, clock, 0, "completed", q=q)
        emit(conn, "e", 1, q=q)
    clock.set(T0 + timedelta(hours=2))

    rows = conn.execute(
        "SELECT queue_name, tasks_deleted, events_deleted FROM absurd.cleanup_all_queues()"
    ).fetchall()
    by_queue = {q: (t, e) for q, t, e in rows}
    assert by_queue["short"] == (1, 1)
    assert by_queue["long"] == (0, 0)
    assert by_queue["jobs"] == (0, 0)
    assert count(conn, "t", "long") == 1

    clock.set(T0 + timedelta(days=2))
    only = conn.execute(
        "SELECT queue_name, tasks_deleted, events_deleted FROM absurd.cleanup_all_queues(%s)",
        ("long",),
    ).fetchall()
    assert only == [("long", 1, 1)]


def test_cleanup_all_queues_uses_each_queues_limit(conn, clock):
    conn.execute(
        "SELECT absurd.set_queue_policy(%s, %s::jsonb)", ("jobs", json.dumps({"cleanup_limit": 2}))
    )
    for offset in range(5):
        finish(conn, clock, offset, "completed")
    clock.set(T0 + timedelta(days=31))
    rows = conn.execute("SELECT * FROM absurd.cleanup_all_queues(%s)", ("jobs",)).fetchall()
    assert rows == [("jobs", 2, 0)]
    assert count(conn, "t") == 3
