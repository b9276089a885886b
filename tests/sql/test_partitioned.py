"""Partitioned storage: create_queue(q, 'partitioned') splits t_, r_, c_ and w_ into weekly
partitions over their UUIDv7 keys, with DEFAULT partitions, an i_ table for idempotency
keys, and the functions that keep partitions ahead and retire old empty ones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import sql

from .helpers import (
    FakeClock,
    await_event,
    cancel,
    claim,
    claim_one,
    complete,
    emit,
    fail,
    get_checkpoints,
    raises_db,
    run_row,
    set_checkpoint,
    spawn,
    task_result,
    task_row,
)

PQ = "pq"
WEEK = timedelta(days=7)


@pytest.fixture
def clock(conn):
    # A Wednesday, so the window crosses week boundaries predictably.
    return FakeClock(conn, start=datetime(2031, 3, 5, 12, 0, tzinfo=UTC))


@pytest.fixture
def pq(conn, clock):
    conn.execute("SELECT absurd.create_queue(%s, 'partitioned')", (PQ,))
    return PQ


def partitions(conn, parent: str) -> list[str]:
    return [
        name
        for (name,) in conn.execute(
            """SELECT child.relname FROM pg_inherits i
               JOIN pg_class child ON child.oid = i.inhrelid
               WHERE i.inhparent = to_regclass(format('absurd.%%I', %s::text))
               ORDER BY 1""",
            (parent,),
        ).fetchall()
    ]


def where_row_lives(conn, prefix: str, key: str, value) -> str:
    query = sql.SQL("SELECT tableoid::regclass::text FROM absurd.{} WHERE {} = %s").format(
        sql.Identifier(f"{prefix}_{PQ}"), sql.Identifier(key)
    )
    return conn.execute(query, (value,)).fetchone()[0]


def week_tag(conn, when: datetime) -> str:
    return conn.execute("SELECT absurd.partition_week_tag(%s)", (when,)).fetchone()[0]


def test_helpers(conn):
    tags = conn.execute(
        "SELECT absurd.partition_week_tag('2024-01-01 00:00+00'),"
        " absurd.partition_week_tag('2021-01-01 00:00+00'),"
        " absurd.partition_week_tag('2030-12-31 23:59+00'),"
        " absurd.week_bucket_utc('2024-01-03 23:00-05')"
    ).fetchone()
    assert tags == ("401", "053", "101", datetime(2024, 1, 1, tzinfo=UTC))
    floor, back = conn.execute(
        "SELECT absurd.uuidv7_floor('2031-03-05 12:00+00'),"
        " absurd.uuidv7_timestamp(absurd.uuidv7_floor('2031-03-05 12:00:00.123+00'))"
    ).fetchone()
    assert str(floor).endswith("-7000-8000-000000000000")
    assert back == datetime(2031, 3, 5, 12, 0, 0, 123000, tzinfo=UTC)
    with raises_db("P0001", "outside UUIDv7 supported range"):
        conn.execute("SELECT absurd.uuidv7_floor('1969-12-31 23:59+00')")
    assert conn.execute("SELECT absurd.uuidv7_timestamp(gen_random_uuid())").fetchone()[0] is None


def test_create_queue_makes_weekly_partitions_defaults_and_the_key_table(conn, clock, pq):
    kinds = dict(
        conn.execute(
            "SELECT relname, relkind::text FROM pg_class WHERE relname IN"
            " ('t_pq', 'r_pq', 'c_pq', 'w_pq', 'e_pq', 'i_pq')"
        ).fetchall()
    )
    assert kinds == {"t_pq": "p", "r_pq": "p", "c_pq": "p", "w_pq": "p", "e_pq": "r", "i_pq": "r"}
    first = clock.now - timedelta(days=1)  # partition_lookback
    last = clock.now + timedelta(days=28)  # partition_lookahead
    weeks = []
    week = first - timedelta(days=first.weekday())
    while week.date() <= last.date():
        weeks.append(week_tag(conn, week))
        week += WEEK
    for prefix in ("t", "r", "c", "w"):
        expected = sorted([f"{prefix}_pq_{tag}" for tag in weeks] + [f"{prefix}_pq_d"])
        assert partitions(conn, f"{prefix}_pq") == expected
    policy = conn.execute(
        "SELECT storage_mode, default_partition FROM absurd.get_queue_policy('pq')"
    ).fetchone()
    assert policy == ("partitioned", "enabled")
    conn.execute("SELECT absurd.create_queue('pq', 'partitioned')")  # idempotent
    with raises_db("P0001", 'already exists with storage mode "partitioned"'):
        conn.execute("SELECT absurd.create_queue('pq')")


def test_the_whole_task_life_cycle_runs_on_a_partitioned_queue(conn, clock, pq):
    done = spawn(conn, pq, params={"n": 1})
    waiting = spawn(conn, pq, max_attempts=2)
    cancelled = spawn(conn, pq)
    run = claim_one(conn, pq, timeout=0)
    set_checkpoint(conn, run["task_id"], "step", {"v": 1}, run["run_id"], q=pq)
    assert [c["checkpoint_name"] for c in get_checkpoints(conn, done.task_id, done.run_id, q=pq)]
    complete(conn, run["run_id"], "ok", q=pq)
    second = claim_one(conn, pq, timeout=0)
    assert await_event(conn, second["task_id"], second["run_id"], "go", q=pq).should_suspend
    emit(conn, "go", {"go": True}, q=pq)
    woken = claim_one(conn, pq, timeout=0)
    assert woken["event_payload"] == {"go": True}
    fail(conn, woken["run_id"], q=pq)
    third = claim_one(conn, pq, timeout=0)
    assert third["task_id"] == cancelled.task_id
    cancel(conn, cancelled.task_id, q=pq)
    retried = claim_one(conn, pq, timeout=0)
    assert (retried["task_id"], retried["attempt"]) == (waiting.task_id, 2)
    complete(conn, retried["run_id"], "second", q=pq)
    assert task_result(conn, done.task_id, pq)["result"] == "ok"
    assert task_result(conn, waiting.task_id, pq)["result"] == "second"
    assert task_row(conn, cancelled.task_id, pq)["state"] == "cancelled"
    week = week_tag(conn, clock.now)
    assert where_row_lives(conn, "t", "task_id", done.task_id) == f"absurd.t_pq_{week}"
    assert where_row_lives(conn, "r", "run_id", done.run_id) == f"absurd.r_pq_{week}"


def test_idempotency_keys_live_in_i_and_are_released_by_cleanup(conn, clock, pq):
    first = spawn(conn, pq, params={"n": 1}, idempotency_key="once")
    again = spawn(conn, pq, params={"n": 2}, idempotency_key="once")
    assert (again.task_id, again.run_id, again.attempt, again.created) == (
        first.task_id,
        first.run_id,
        1,
        False,
    )
    keys = conn.execute("SELECT idempotency_key, task_id FROM absurd.i_pq").fetchall()
    assert keys == [("once", first.task_id)]
    complete(conn, claim_one(conn, pq)["run_id"], "done", q=pq)
    clock.advance(3600)
    deleted = conn.execute("SELECT absurd.cleanup_tasks('pq', 60)").fetchone()[0]
    assert deleted == 1
    assert conn.execute("SELECT count(*) FROM absurd.i_pq").fetchone()[0] == 0
    fresh = spawn(conn, pq, idempotency_key="once")
    assert fresh.created and fresh.task_id != first.task_id
    rows = conn.execute("SELECT * FROM absurd.cleanup_all_queues('pq')").fetchall()
    assert rows == [("pq", 0, 0)]


def test_ids_outside_every_week_go_to_the_default_partition(conn, clock, pq):
    clock.advance(120 * 86400)  # far past the lookahead: no weekly partition there yet
    late = spawn(conn, pq)
    assert where_row_lives(conn, "t", "task_id", late.task_id) == "absurd.t_pq_d"
    with raises_db("P0001", 'default partition "t_pq_d" is not empty'):
        conn.execute(
            "SELECT absurd.set_queue_policy('pq', '{\"default_partition\": \"disabled\"}')"
        )
    assert "t_pq_d" in partitions(conn, "t_pq")
    assert conn.execute("SELECT default_partition FROM absurd.queues").fetchone()[0] == "enabled"


def test_disabling_and_enabling_the_default_partitions(conn, clock, pq):
    conn.execute("SELECT absurd.set_queue_policy('pq', '{\"default_partition\": \"disabled\"}')")
    assert "t_pq_d" not in partitions(conn, "t_pq")
    assert conn.execute("SELECT to_regclass('absurd.r_pq_d')").fetchone()[0] is None
    clock.advance(120 * 86400)
    with pytest.raises(psycopg.errors.CheckViolation):  # no partition for that week
        spawn(conn, pq)
    conn.execute("SELECT absurd.ensure_partitions('pq')")
    assert spawn(conn, pq).created
    conn.execute("SELECT absurd.set_queue_policy('pq', '{\"default_partition\": \"enabled\"}')")
    assert "t_pq_d" in partitions(conn, "t_pq")
    with raises_db("P0001", "partitioned queues only"):
        conn.execute("SELECT absurd.create_queue('plain')")
        conn.execute(
            "SELECT absurd.set_queue_policy('plain', '{\"default_partition\": \"enabled\"}')"
        )


def test_ensure_partitions_follows_the_clock_and_checks_its_queue(conn, clock, pq):
    before = set(partitions(conn, "t_pq"))
    clock.advance(14 * 86400)
    conn.execute("SELECT absurd.ensure_partitions()")
    added = set(partitions(conn, "t_pq")) - before
    assert len(added) == 2
    conn.execute("SELECT absurd.ensure_partitions('pq')")  # nothing missing: a no-op
    assert set(partitions(conn, "t_pq")) == before | added
    with raises_db("P0001", 'Queue "nope" does not exist'):
        conn.execute("SELECT absurd.ensure_partitions('nope')")


def test_detach_candidates_and_dropping_a_detached_partition(conn, clock, pq):
    old_week = week_tag(conn, clock.now + WEEK)  # next week's partitions: empty
    busy_week = week_tag(conn, clock.now)
    busy = spawn(conn, pq)  # this week's: never a candidate while they hold a row
    assert conn.execute("SELECT * FROM absurd.list_detach_candidates('pq')").fetchall() == []
    conn.execute(
        "SELECT absurd.set_queue_policy('pq', %s::jsonb)",
        ('{"detach_mode": "empty", "detach_min_age": "1 day"}',),
    )
    clock.advance(60 * 86400)
    candidates = conn.execute("SELECT * FROM absurd.list_detach_candidates('pq')").fetchall()
    names = {row[2] for row in candidates}
    assert f"t_pq_{old_week}" in names and f"r_pq_{old_week}" in names
    assert f"t_pq_{busy_week}" not in names and f"r_pq_{busy_week}" not in names
    assert f"c_pq_{busy_week}" in names  # no checkpoint was written this week
    assert all(row[0] == "pq" and row[2].startswith(row[1] + "_") for row in candidates)
    assert not any(name.endswith("_d") for name in names)

    target = f"w_pq_{old_week}"
    drop = "SELECT absurd.drop_detached_partition(%s)"
    assert conn.execute(drop, (target,)).fetchone()[0] is False  # still attached
    conn.execute(
        sql.SQL("ALTER TABLE absurd.{} DETACH PARTITION absurd.{}").format(
            sql.Identifier("w_pq"), sql.Identifier(target)
        )
    )
    assert conn.execute(drop, (target,)).fetchone()[0] is True
    assert conn.execute("SELECT to_regclass(%s)", (f"absurd.{target}",)).fetchone()[0] is None
    assert conn.execute(drop, (target,)).fetchone()[0] is False  # gone already
    with raises_db("P0001", "is not a detached partition"):
        conn.execute(drop, ("e_pq",))
    with raises_db("P0001", "partition table must be provided"):
        conn.execute(drop, (" ",))
    assert task_row(conn, busy.task_id, pq)["state"] == "pending"


def test_drop_queue_removes_every_partition_and_the_key_table(conn, clock, pq):
    spawn(conn, pq, idempotency_key="k")
    conn.execute("SELECT absurd.drop_queue('pq')")
    left = conn.execute(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'absurd' AND c.relname LIKE '%pq%'"
    ).fetchone()[0]
    assert left == 0


def test_reapplying_the_schema_keeps_a_partitioned_queue(conn, clock, pq):
    from absurd_tui.db import schema

    spawned = spawn(conn, pq, idempotency_key="k")
    before = partitions(conn, "t_pq")
    schema.install(conn)
    assert partitions(conn, "t_pq") == before
    assert spawn(conn, pq, idempotency_key="k").task_id == spawned.task_id
    assert claim(conn, pq)[0]["task_id"] == spawned.task_id
    assert run_row(conn, spawned.run_id, pq)["state"] == "running"
