"""set_task_checkpoint_state, get_task_checkpoint_state(s) and extend_claim."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from psycopg import sql

from .helpers import (
    T0,
    FakeClock,
    Q,
    cancel,
    checkpoint_rows,
    claim,
    claim_one,
    complete,
    create_queue,
    extend,
    fail,
    force_update,
    get_checkpoint,
    get_checkpoints,
    raises_db,
    run_row,
    runs_of,
    schedule,
    set_checkpoint,
    spawn,
    table,
)


@pytest.fixture
def clock(conn):
    create_queue(conn)
    return FakeClock(conn)


def second_attempt(conn, clock, **spawn_options):
    """A task whose attempt 1 failed and whose attempt 2 is claimed: (task_id, run1, run2)."""
    spawned = spawn(conn, **spawn_options)
    claim_one(conn, timeout=0)
    fail(conn, spawned.run_id)
    run2 = claim_one(conn, timeout=0)
    assert run2["attempt"] == 2
    return spawned.task_id, spawned.run_id, run2["run_id"]


# --- set_task_checkpoint_state ------------------------------------------------------------


def test_checkpoint_write_and_read_back(conn, clock):
    spawned = spawn(conn)
    claim_one(conn)
    clock.advance(1)
    set_checkpoint(conn, spawned.task_id, "fetch", {"rows": [1, 2]}, spawned.run_id, extend_by=30)
    row = checkpoint_rows(conn, spawned.task_id)["fetch"]
    assert row["state"] == {"rows": [1, 2]}
    assert row["status"] == "committed"
    assert row["owner_run_id"] == spawned.run_id
    assert row["updated_at"] == clock.now

    got = get_checkpoint(conn, spawned.task_id, "fetch")
    assert got == [
        {
            "checkpoint_name": "fetch",
            "state": {"rows": [1, 2]},
            "status": "committed",
            "owner_run_id": spawned.run_id,
            "updated_at": clock.now,
        }
    ]


def test_checkpoint_names_are_opaque_text(conn, clock):
    spawned = spawn(conn)
    claim_one(conn)
    for name in ("step", "step#2", "$awaitEvent:x", "with space", 'q"uote'):
        set_checkpoint(conn, spawned.task_id, name, name, spawned.run_id)
    assert {k: v["state"] for k, v in checkpoint_rows(conn, spawned.task_id).items()} == {
        "step": "step",
        "step#2": "step#2",
        "$awaitEvent:x": "$awaitEvent:x",
        "with space": "with space",
        'q"uote': 'q"uote',
    }


def test_checkpoint_of_json_null_is_a_stored_value(conn, clock):
    spawned = spawn(conn)
    claim_one(conn)
    set_checkpoint(conn, spawned.task_id, "nothing", None, spawned.run_id)
    rows = get_checkpoint(conn, spawned.task_id, "nothing")
    assert len(rows) == 1 and rows[0]["state"] is None
    assert (
        conn.execute(
            sql.SQL("SELECT jsonb_typeof(state) FROM {} WHERE task_id = %s").format(table("c")),
            (spawned.task_id,),
        ).fetchone()[0]
        == "null"
    )


def test_checkpoint_write_renews_the_lease(conn, clock):
    spawned = spawn(conn)
    claim_one(conn, timeout=30)
    clock.advance(20)
    set_checkpoint(conn, spawned.task_id, "s", 1, spawned.run_id, extend_by=30)
    assert run_row(conn, spawned.run_id)["claim_expires_at"] == clock.now + timedelta(seconds=30)


@pytest.mark.parametrize("extend_by", [None, 0, -5])
def test_checkpoint_write_without_a_positive_extension_keeps_the_lease(conn, clock, extend_by):
    spawned = spawn(conn)
    claim_one(conn, timeout=30)
    clock.advance(20)
    set_checkpoint(conn, spawned.task_id, "s", 1, spawned.run_id, extend_by=extend_by)
    assert run_row(conn, spawned.run_id)["claim_expires_at"] == T0 + timedelta(seconds=30)


def test_checkpoint_write_does_not_add_a_lease_to_a_run_without_one(conn, clock):
    spawned = spawn(conn)
    claim_one(conn, timeout=0)
    set_checkpoint(conn, spawned.task_id, "s", 1, spawned.run_id, extend_by=30)
    assert run_row(conn, spawned.run_id)["claim_expires_at"] is None


def test_checkpoint_write_does_not_require_a_running_run(conn, clock):
    spawned = spawn(conn)
    set_checkpoint(conn, spawned.task_id, "early", "x", spawned.run_id, extend_by=30)
    assert checkpoint_rows(conn, spawned.task_id)["early"]["state"] == "x"
    run = run_row(conn, spawned.run_id)
    assert run["state"] == "pending" and run["claim_expires_at"] is None

    claim_one(conn)
    schedule(conn, spawned.run_id, clock.now + timedelta(hours=1))
    set_checkpoint(conn, spawned.task_id, "asleep", "y", spawned.run_id, extend_by=30)
    assert checkpoint_rows(conn, spawned.task_id)["asleep"]["state"] == "y"
    assert run_row(conn, spawned.run_id)["claim_expires_at"] is None


def test_same_run_overwrites_its_own_checkpoint(conn, clock):
    spawned = spawn(conn)
    claim_one(conn)
    set_checkpoint(conn, spawned.task_id, "s", 1, spawned.run_id)
    clock.advance(1)
    set_checkpoint(conn, spawned.task_id, "s", 2, spawned.run_id)
    row = checkpoint_rows(conn, spawned.task_id)["s"]
    assert row["state"] == 2 and row["updated_at"] == clock.now


def test_newer_attempt_overwrites_an_older_attempts_checkpoint(conn, clock):
    spawned = spawn(conn)
    claim_one(conn, timeout=0)
    set_checkpoint(conn, spawned.task_id, "s", "from-1", spawned.run_id)
    fail(conn, spawned.run_id)
    run2 = claim_one(conn, timeout=0)
    clock.advance(1)
    set_checkpoint(conn, spawned.task_id, "s", "from-2", run2["run_id"])
    row = checkpoint_rows(conn, spawned.task_id)["s"]
    assert row["state"] == "from-2"
    assert row["owner_run_id"] == run2["run_id"]


def test_older_attempt_never_overwrites_a_newer_attempts_checkpoint(conn, clock):
    task_id, run1, run2 = second_attempt(conn, clock)
    set_checkpoint(conn, task_id, "s", "from-2", run2)
    # A live older attempt cannot arise through the public functions (the retry fails it
    # first, and a failed run gets AB002); revive it to isolate the attempt-aware upsert.
    force_update(conn, "r", "run_id", run1, state="running")
    clock.advance(1)
    set_checkpoint(conn, task_id, "s", "from-1", run1)
    row = checkpoint_rows(conn, task_id)["s"]
    assert row["state"] == "from-2"
    assert row["owner_run_id"] == run2
    assert row["updated_at"] == T0
    # New steps of the older attempt are still written.
    set_checkpoint(conn, task_id, "other", "from-1", run1)
    assert checkpoint_rows(conn, task_id)["other"]["owner_run_id"] == run1


def test_checkpoint_whose_owner_run_is_gone_can_be_overwritten(conn, clock):
    task_id, run1, run2 = second_attempt(conn, clock)
    set_checkpoint(conn, task_id, "s", "from-2", run2)
    force_update(conn, "r", "run_id", run1, state="running")
    conn.execute(sql.SQL("DELETE FROM {} WHERE run_id = %s").format(table("r")), (run2,))
    set_checkpoint(conn, task_id, "s", "from-1", run1)
    row = checkpoint_rows(conn, task_id)["s"]
    assert row["state"] == "from-1" and row["owner_run_id"] == run1


@pytest.mark.parametrize("step", ["", None])
def test_checkpoint_requires_a_step_name(conn, clock, step):
    spawned = spawn(conn)
    claim_one(conn)
    with raises_db("P0001", "step_name must be provided"):
        conn.execute(
            "SELECT absurd.set_task_checkpoint_state(%s, %s, %s, %s, %s, %s)",
            (Q, spawned.task_id, step, "1", spawned.run_id, 30),
        )


def test_checkpoint_for_an_unknown_run(conn, clock):
    spawned = spawn(conn)
    ghost = uuid.uuid4()
    with raises_db("P0001", f'Run "{ghost}" not found for checkpoint'):
        set_checkpoint(conn, spawned.task_id, "s", 1, ghost)


def test_checkpoint_on_a_cancelled_task_is_ab001(conn, clock):
    spawned = spawn(conn)
    claim_one(conn)
    cancel(conn, spawned.task_id)
    with raises_db("AB001", "Task has been cancelled"):
        set_checkpoint(conn, spawned.task_id, "s", 1, spawned.run_id, extend_by=30)
    assert checkpoint_rows(conn, spawned.task_id) == {}


def test_checkpoint_from_a_failed_run_is_ab002(conn, clock):
    spawned = spawn(conn)
    claim_one(conn)
    fail(conn, spawned.run_id)
    with raises_db("AB002", f'Run "{spawned.run_id}" has already failed in queue "{Q}"'):
        set_checkpoint(conn, spawned.task_id, "s", 1, spawned.run_id, extend_by=30)
    assert checkpoint_rows(conn, spawned.task_id) == {}


# --- get_task_checkpoint_state ------------------------------------------------------------


def test_get_checkpoint_of_a_missing_step_returns_no_rows(conn, clock):
    spawned = spawn(conn)
    assert get_checkpoint(conn, spawned.task_id, "never") == []


def test_get_checkpoint_returns_committed_only_unless_asked(conn, clock):
    spawned = spawn(conn)
    # Only 'committed' is ever written by the engine; a row in another status is inserted
    # directly to pin the include_pending filter.
    conn.execute(
        sql.SQL(
            "INSERT INTO {} (task_id, checkpoint_name, state, status, owner_run_id, updated_at)"
            " VALUES (%s, 'draft', '1', 'pending', %s, absurd.current_time())"
        ).format(table("c")),
        (spawned.task_id, spawned.run_id),
    )
    assert get_checkpoint(conn, spawned.task_id, "draft") == []
    assert get_checkpoint(conn, spawned.task_id, "draft", include_pending=False) == []
    rows = get_checkpoint(conn, spawned.task_id, "draft", include_pending=True)
    assert [(r["checkpoint_name"], r["status"]) for r in rows] == [("draft", "pending")]


def test_get_checkpoint_does_not_filter_by_attempt(conn, clock):
    task_id, _run1, run2 = second_attempt(conn, clock)
    set_checkpoint(conn, task_id, "s", "from-2", run2)
    rows = get_checkpoint(conn, task_id, "s")
    assert [r["state"] for r in rows] == ["from-2"]


def test_get_checkpoint_on_an_unknown_queue_is_undefined_table(conn, clock):
    with raises_db("42P01"):
        get_checkpoint(conn, uuid.uuid4(), "s", q="ghost")


# --- get_task_checkpoint_states -----------------------------------------------------------


def test_get_checkpoints_filters_by_owner_attempt_and_orders_by_update(conn, clock):
    spawned = spawn(conn)
    claim_one(conn, timeout=0)
    set_checkpoint(conn, spawned.task_id, "b", "b1", spawned.run_id)
    clock.advance(1)
    set_checkpoint(conn, spawned.task_id, "a", "a1", spawned.run_id)
    fail(conn, spawned.run_id)
    run2 = claim_one(conn, timeout=0)["run_id"]
    clock.advance(1)
    set_checkpoint(conn, spawned.task_id, "c", "c2", run2)

    for_run2 = get_checkpoints(conn, spawned.task_id, run2)
    assert [(r["checkpoint_name"], r["state"]) for r in for_run2] == [
        ("b", "b1"),
        ("a", "a1"),
        ("c", "c2"),
    ]
    assert {r["status"] for r in for_run2} == {"committed"}
    assert for_run2[2]["owner_run_id"] == run2

    # The older attempt does not see what the newer one wrote.
    for_run1 = get_checkpoints(conn, spawned.task_id, spawned.run_id)
    assert [r["checkpoint_name"] for r in for_run1] == ["b", "a"]


def test_get_checkpoints_includes_those_whose_owner_run_is_gone(conn, clock):
    task_id, run1, run2 = second_attempt(conn, clock)
    set_checkpoint(conn, task_id, "newer", 2, run2)
    conn.execute(sql.SQL("DELETE FROM {} WHERE run_id = %s").format(table("r")), (run2,))
    assert [r["checkpoint_name"] for r in get_checkpoints(conn, task_id, run1)] == ["newer"]


def test_get_checkpoints_for_an_unknown_run(conn, clock):
    spawned = spawn(conn)
    ghost = uuid.uuid4()
    with raises_db("P0001", f'Run "{ghost}" not found in queue "{Q}"'):
        get_checkpoints(conn, spawned.task_id, ghost)


def test_get_checkpoints_for_a_run_of_another_task(conn, clock):
    mine = spawn(conn)
    theirs = spawn(conn)
    with raises_db("P0001", "does not belong") as info:
        get_checkpoints(conn, mine.task_id, theirs.run_id)
    assert info.value.diag.message_primary == (
        f'Run "{theirs.run_id}" does not belong to task "{mine.task_id}" in queue "{Q}"'
    )


def test_get_checkpoints_of_a_fresh_task_is_empty(conn, clock):
    spawned = spawn(conn)
    assert get_checkpoints(conn, spawned.task_id, spawned.run_id) == []


# --- extend_claim -------------------------------------------------------------------------


def test_extend_claim_sets_the_lease_relative_to_now(conn, clock):
    spawned = spawn(conn)
    claim_one(conn, timeout=100)
    clock.advance(10)
    extend(conn, spawned.run_id, 30)
    # now + 30, not the old expiry + 30 (which would be T0+130)
    assert run_row(conn, spawned.run_id)["claim_expires_at"] == clock.now + timedelta(seconds=30)


def test_extended_lease_survives_the_expiry_sweep(conn, clock):
    spawned = spawn(conn)
    claim_one(conn, timeout=10)
    clock.advance(8)
    extend(conn, spawned.run_id, 10)
    clock.advance(8)
    assert claim(conn) == []  # the expiry sweep must leave the renewed lease alone
    assert run_row(conn, spawned.run_id)["state"] == "running"


@pytest.mark.parametrize("seconds", [None, 0, -1])
def test_extend_claim_needs_a_positive_extension(conn, clock, seconds):
    spawned = spawn(conn)
    claim_one(conn)
    with raises_db("P0001", "extend_by must be > 0"):
        extend(conn, spawned.run_id, seconds)


def test_extend_claim_of_an_unknown_run(conn, clock):
    with raises_db("P0001", "not found"):
        extend(conn, uuid.uuid4(), 30)


def test_extend_claim_on_a_cancelled_task_is_ab001(conn, clock):
    spawned = spawn(conn)
    claim_one(conn)
    cancel(conn, spawned.task_id)
    with raises_db("AB001", "Task has been cancelled"):
        extend(conn, spawned.run_id, 30)


def test_extend_claim_on_a_failed_run_is_ab002(conn, clock):
    spawned = spawn(conn)
    claim_one(conn)
    fail(conn, spawned.run_id)
    with raises_db("AB002", f'Run "{spawned.run_id}" has already failed in queue "{Q}"'):
        extend(conn, spawned.run_id, 30)


@pytest.mark.parametrize("state", ["pending", "sleeping", "completed"])
def test_extend_claim_requires_a_running_run(conn, clock, state):
    spawned = spawn(conn)
    if state != "pending":
        claim_one(conn)
    if state == "sleeping":
        schedule(conn, spawned.run_id, clock.now + timedelta(hours=1))
    if state == "completed":
        complete(conn, spawned.run_id)
    with raises_db("P0001", f'Run "{spawned.run_id}" is not currently running in queue "{Q}"'):
        extend(conn, spawned.run_id, 30)


def test_extend_claim_without_a_lease(conn, clock):
    spawned = spawn(conn)
    claim_one(conn, timeout=0)
    with raises_db("P0001", f'Run "{spawned.run_id}" does not have an active claim in queue "{Q}"'):
        extend(conn, spawned.run_id, 30)
    assert run_row(conn, spawned.run_id)["claim_expires_at"] is None


def test_extend_claim_accepts_the_sdk_parameter_types(conn, clock):
    spawned = spawn(conn)
    claim_one(conn)
    # heartbeat() passes claim_timeout, a Python int: int2 for small values, int4 for larger.
    extend(conn, spawned.run_id, 120)
    extend(conn, spawned.run_id, 70000)
    assert run_row(conn, spawned.run_id)["claim_expires_at"] == clock.now + timedelta(seconds=70000)
    assert runs_of(conn, spawned.task_id)[0]["state"] == "running"
