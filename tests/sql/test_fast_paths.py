"""The engine's fast paths beyond the contract: claim_runs, complete_run_and_claim,
write_checkpoint and release_run. Each must behave as the contract function it stands
for (same rows, same refusals), through prepared statements that survive the queue
being dropped and created again in the same session."""

from __future__ import annotations

import json
import time

import psycopg
import pytest
from psycopg.rows import dict_row

from .helpers import (
    T0,
    FakeClock,
    Q,
    cancel,
    checkpoint_rows,
    claim,
    claim_one,
    create_queue,
    fail,
    raises_db,
    run_row,
    runs_of,
    set_checkpoint,
    spawn,
    task_row,
)

CLAIM_COLUMNS = (
    "run_id, task_id, attempt, task_name, params, retry_strategy, max_attempts, headers,"
    " wake_event, event_payload, checkpoints"
)
ODD = 'Odd "queue" name'


def claim_runs(conn, q=Q, worker="worker-a", timeout=30, qty=1) -> list[dict]:
    return (
        conn.cursor(row_factory=dict_row)
        .execute(
            f"SELECT {CLAIM_COLUMNS} FROM absurd.claim_runs(%s, %s, %s, %s)",
            (q, worker, timeout, qty),
        )
        .fetchall()
    )


def complete_and_claim(conn, run_id, result=None, q=Q, qty=1, claim_queue=None) -> list[dict]:
    return (
        conn.cursor(row_factory=dict_row)
        .execute(
            f"SELECT {CLAIM_COLUMNS} FROM absurd.complete_run_and_claim(%s, %s, %s, %s, %s, %s, %s)",
            (q, run_id, json.dumps(result), "worker-b", 30, qty, claim_queue),
        )
        .fetchall()
    )


def write_checkpoint(conn, task_id, step, state, run_id, extend=None, q=Q) -> None:
    conn.execute(
        "SELECT absurd.write_checkpoint(%s, %s, %s, %s, %s, %s)",
        (q, task_id, step, json.dumps(state), run_id, extend),
    )


def release(conn, run_id, q=Q) -> bool:
    return conn.execute("SELECT absurd.release_run(%s, %s)", (q, run_id)).fetchone()[0]


@pytest.fixture
def clock(conn):
    create_queue(conn)
    return FakeClock(conn)


@pytest.mark.parametrize("q", [Q, ODD])
def test_claim_runs_claims_as_claim_task_does_and_brings_the_replay_cache(conn, q):
    create_queue(conn, q)
    FakeClock(conn)
    first = spawn(conn, q, params={"n": 1}, headers={"h": 1}, max_attempts=3)
    second = spawn(conn, q, params={"n": 2})
    (row,) = claim_runs(conn, q, timeout=60)
    assert (row["run_id"], row["task_id"], row["attempt"]) == (first.run_id, first.task_id, 1)
    assert (row["params"], row["headers"], row["max_attempts"]) == ({"n": 1}, {"h": 1}, 3)
    assert row["checkpoints"] == {}
    run = run_row(conn, first.run_id, q)
    assert (run["state"], run["claimed_by"]) == ("running", "worker-a")
    assert run["claim_expires_at"] == T0.replace(minute=1)
    assert task_row(conn, first.task_id, q)["state"] == "running"
    # The same claim with qty, and nothing left afterwards.
    assert [r["run_id"] for r in claim_runs(conn, q, qty=5)] == [second.run_id]
    assert claim_runs(conn, q) == []


def test_the_replay_cache_follows_get_task_checkpoint_states(conn, clock):
    spawned = spawn(conn, max_attempts=3)
    claim_one(conn, timeout=0)
    set_checkpoint(conn, spawned.task_id, "one", {"v": 1}, spawned.run_id)
    set_checkpoint(conn, spawned.task_id, "null", None, spawned.run_id)
    fail(conn, spawned.run_id)
    (row,) = claim_runs(conn)
    assert row["attempt"] == 2
    assert row["checkpoints"] == {"one": {"v": 1}, "null": None}
    expected = conn.execute(
        "SELECT checkpoint_name, state FROM absurd.get_task_checkpoint_states(%s, %s, %s)",
        (Q, spawned.task_id, row["run_id"]),
    ).fetchall()
    assert dict(expected) == row["checkpoints"]


def test_claim_runs_runs_the_lease_sweep(conn, clock):
    spawned = spawn(conn, max_attempts=2)
    claim_one(conn, timeout=10)
    clock.advance(11)
    (row,) = claim_runs(conn)
    assert row["attempt"] == 2
    (failed, _) = runs_of(conn, spawned.task_id)
    assert failed["failure_reason"]["name"] == "$ClaimTimeout"


def test_complete_run_and_claim_completes_then_claims_the_next(conn, clock):
    done = spawn(conn)
    waiting = spawn(conn)
    claim_one(conn)
    (row,) = complete_and_claim(conn, done.run_id, {"ok": True})
    assert row["run_id"] == waiting.run_id
    assert run_row(conn, waiting.run_id)["claimed_by"] == "worker-b"
    run = run_row(conn, done.run_id)
    assert (run["state"], run["result"]) == ("completed", {"ok": True})
    task = task_row(conn, done.task_id)
    assert (task["state"], task["completed_payload"]) == ("completed", {"ok": True})
    # Nothing left: the completion still holds.
    assert complete_and_claim(conn, waiting.run_id, 7) == []
    assert task_row(conn, waiting.task_id)["state"] == "completed"


def test_complete_run_and_claim_claims_on_another_queue_or_nothing(conn, clock):
    create_queue(conn, ODD)
    done = spawn(conn)
    elsewhere = spawn(conn, ODD)
    claim_one(conn)
    (row,) = complete_and_claim(conn, done.run_id, claim_queue=ODD)
    assert row["run_id"] == elsewhere.run_id
    other = spawn(conn)
    claim_one(conn)
    assert complete_and_claim(conn, other.run_id, claim_queue="no such queue") == []
    assert task_row(conn, other.task_id)["state"] == "completed"
    last = spawn(conn)
    claim_one(conn)
    assert complete_and_claim(conn, last.run_id, qty=0) == []


def test_complete_run_and_claim_refuses_as_complete_run_does(conn, clock):
    cancelled = spawn(conn)
    claim_one(conn)
    cancel(conn, cancelled.task_id)
    with raises_db("AB001"):
        complete_and_claim(conn, cancelled.run_id)
    failed = spawn(conn, max_attempts=1)
    claim_one(conn)
    fail(conn, failed.run_id)
    with raises_db("AB002", "has already failed"):
        complete_and_claim(conn, failed.run_id)
    pending = spawn(conn)
    with raises_db("P0001", "is not currently running"):
        complete_and_claim(conn, pending.run_id)
    with raises_db("P0001", "not found"):
        complete_and_claim(conn, cancelled.task_id)
    # A refused completion claims nothing.
    assert run_row(conn, pending.run_id)["state"] == "pending"


def test_write_checkpoint_writes_and_extends_as_set_task_checkpoint_state(conn, clock):
    spawned = spawn(conn)
    claim_one(conn, timeout=30)
    clock.advance(20)
    write_checkpoint(conn, spawned.task_id, "one", {"v": 1}, spawned.run_id, 30)
    row = checkpoint_rows(conn, spawned.task_id)["one"]
    assert (row["state"], row["status"], row["owner_run_id"]) == (
        {"v": 1},
        "committed",
        spawned.run_id,
    )
    assert run_row(conn, spawned.run_id)["claim_expires_at"] == T0.replace(second=50)
    write_checkpoint(conn, spawned.task_id, "one", "again", spawned.run_id)
    assert checkpoint_rows(conn, spawned.task_id)["one"]["state"] == "again"


def test_a_failed_attempt_cannot_overwrite_the_next_attempts_checkpoint(conn, clock):
    spawned = spawn(conn, max_attempts=3)
    claim_one(conn, timeout=0)
    fail(conn, spawned.run_id)
    run2 = claim_one(conn, timeout=0)["run_id"]
    set_checkpoint(conn, spawned.task_id, "one", "new", run2)
    with raises_db("AB002"):
        write_checkpoint(conn, spawned.task_id, "one", "old", spawned.run_id)
    assert checkpoint_rows(conn, spawned.task_id)["one"]["state"] == "new"


def test_write_checkpoint_refuses_as_set_task_checkpoint_state(conn, clock):
    spawned = spawn(conn)
    claim_one(conn)
    with raises_db("P0001", "step_name must be provided"):
        write_checkpoint(conn, spawned.task_id, "", 1, spawned.run_id)
    with raises_db("P0001", "not found for checkpoint"):
        write_checkpoint(conn, spawned.task_id, "x", 1, spawned.task_id)
    cancel(conn, spawned.task_id)
    with raises_db("AB001"):
        write_checkpoint(conn, spawned.task_id, "x", 1, spawned.run_id)
    assert "x" not in checkpoint_rows(conn, spawned.task_id)


def test_release_run_hands_a_claimed_run_back_as_the_same_attempt(conn, clock):
    spawned = spawn(conn, max_attempts=1)
    claim_one(conn, timeout=30)
    write_checkpoint(conn, spawned.task_id, "one", 1, spawned.run_id, 30)
    clock.advance(5)
    assert release(conn, spawned.run_id) is True
    run = run_row(conn, spawned.run_id)
    assert (run["state"], run["attempt"], run["claimed_by"], run["claim_expires_at"]) == (
        "pending",
        1,
        None,
        None,
    )
    assert run["available_at"] == T0.replace(second=5)
    assert task_row(conn, spawned.task_id)["state"] == "pending"
    (again,) = claim_runs(conn, worker="worker-b")
    assert (again["run_id"], again["attempt"], again["checkpoints"]) == (
        spawned.run_id,
        1,
        {"one": 1},
    )
    assert len(runs_of(conn, spawned.task_id)) == 1


def test_release_run_changes_nothing_that_is_not_running(conn, clock):
    pending = spawn(conn)
    assert release(conn, pending.run_id) is False
    done = claim_one(conn)
    conn.execute("SELECT absurd.complete_run(%s, %s, 'null')", (Q, done["run_id"]))
    assert release(conn, done["run_id"]) is False
    assert run_row(conn, done["run_id"])["state"] == "completed"
    with raises_db("P0001", "not found"):
        release(conn, pending.task_id)


def test_release_run_notifies_ready(conn, connect, clock):
    spawned = spawn(conn)
    claim_one(conn)
    listener = connect()
    listener.execute("LISTEN absurd_ready")
    release(conn, spawned.run_id)
    deadline = time.monotonic() + 5
    seen = []
    while time.monotonic() < deadline and Q not in seen:
        seen += [n.payload for n in listener.notifies(timeout=0.2, stop_after=1)]
    assert Q in seen


def test_prepared_statements_follow_a_queue_dropped_and_created_again(conn, clock):
    spawn(conn)
    assert len(claim_runs(conn)) == 1
    conn.execute("SELECT absurd.drop_queue(%s)", (Q,))
    with pytest.raises(psycopg.errors.UndefinedTable):
        claim_runs(conn)
    create_queue(conn)
    spawned = spawn(conn)
    (row,) = claim_runs(conn)
    assert row["run_id"] == spawned.run_id
    assert claim(conn) == []


def test_claim_runs_keeps_an_expired_leases_retry_in_its_place(conn, clock):
    # The fast claim sweeps expired leases exactly as claim_task does: the orphan's
    # retry is claimed before work spawned after it.
    orphan = spawn(conn, name="orphan")
    claim_one(conn, worker="dead", timeout=10)
    clock.advance(5)
    newer = [spawn(conn, name=f"newer-{n}") for n in range(3)]
    clock.advance(5)
    (first,) = claim_runs(conn)
    assert (first["task_id"], first["attempt"]) == (orphan.task_id, 2)
    assert [row["task_id"] for row in claim_runs(conn, qty=5)] == [s.task_id for s in newer]


def test_the_fast_paths_enforce_the_engines_size_limit(conn, clock):
    conn.execute("SET absurd.max_payload_bytes = 1000")
    spawned = spawn(conn)
    (run,) = claim_runs(conn)
    with raises_db("22001", 'the state of checkpoint "big" is'):
        write_checkpoint(conn, spawned.task_id, "big", "x" * 1000, run["run_id"])
    assert checkpoint_rows(conn, spawned.task_id) == {}
    with raises_db("22001", "result is"):
        complete_and_claim(conn, run["run_id"], ["x" * 1000])
    assert run_row(conn, run["run_id"])["state"] == "running"
