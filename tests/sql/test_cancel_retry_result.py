"""cancel_task, retry_task (in place and spawn_new) and get_task_result."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest

from .helpers import (
    FakeClock,
    Q,
    await_event,
    cancel,
    claim,
    claim_one,
    complete,
    count,
    create_queue,
    fail,
    raises_db,
    retry,
    run_row,
    runs_of,
    schedule,
    spawn,
    task_result,
    task_row,
    wait_rows,
)


@pytest.fixture
def clock(conn):
    create_queue(conn)
    return FakeClock(conn)


def failed_task(conn, max_attempts: int = 1, **options):
    spawned = spawn(conn, max_attempts=max_attempts, **options)
    for _ in range(max_attempts):
        run = claim_one(conn, timeout=0)
        fail(conn, run["run_id"], {"name": "Error", "message": f"attempt {run['attempt']}"})
    assert task_row(conn, spawned.task_id)["state"] == "failed"
    return spawned


# --- cancel_task ----------------------------------------------------------------------------


def test_cancel_a_pending_task(conn, clock):
    spawned = spawn(conn)
    clock.advance(3)
    cancel(conn, spawned.task_id)
    task = task_row(conn, spawned.task_id)
    assert task["state"] == "cancelled"
    assert task["cancelled_at"] == clock.now
    assert run_row(conn, spawned.run_id)["state"] == "cancelled"
    assert claim(conn) == []


def test_cancel_a_running_task_clears_the_lease(conn, clock):
    spawned = spawn(conn)
    claim_one(conn, timeout=60)
    cancel(conn, spawned.task_id)
    run = run_row(conn, spawned.run_id)
    assert run["state"] == "cancelled"
    assert run["claim_expires_at"] is None
    assert task_row(conn, spawned.task_id)["state"] == "cancelled"
    # The lease can no longer expire into a $ClaimTimeout retry.
    clock.advance(3600)
    assert claim(conn) == []
    assert len(runs_of(conn, spawned.task_id)) == 1


def test_cancel_a_sleeping_task_removes_its_waits(conn, clock):
    spawned = spawn(conn)
    claim_one(conn)
    await_event(conn, spawned.task_id, spawned.run_id, "e", step="w", timeout=100)
    cancel(conn, spawned.task_id)
    assert run_row(conn, spawned.run_id)["state"] == "cancelled"
    assert wait_rows(conn, task_id=spawned.task_id) == []
    clock.advance(200)
    assert claim(conn) == []


def test_cancel_a_task_sleeping_on_a_timer(conn, clock):
    spawned = spawn(conn)
    claim_one(conn)
    schedule(conn, spawned.run_id, clock.now + timedelta(seconds=10))
    cancel(conn, spawned.task_id)
    clock.advance(20)
    assert claim(conn) == []
    assert run_row(conn, spawned.run_id)["state"] == "cancelled"


def test_cancel_a_task_waiting_for_its_retry(conn, clock):
    spawned = spawn(conn, retry_strategy={"kind": "fixed", "base_seconds": 30})
    claim_one(conn)
    fail(conn, spawned.run_id)
    cancel(conn, spawned.task_id)
    runs = runs_of(conn, spawned.task_id)
    # The failed run stays failed; only non-terminal runs are cancelled.
    assert [r["state"] for r in runs] == ["failed", "cancelled"]
    clock.advance(60)
    assert claim(conn) == []


@pytest.mark.parametrize("terminal", ["completed", "failed", "cancelled"])
def test_cancel_of_a_terminal_task_is_a_no_op(conn, clock, terminal):
    spawned = spawn(conn, max_attempts=1)
    if terminal == "cancelled":
        cancel(conn, spawned.task_id)
    else:
        claim_one(conn)
        if terminal == "completed":
            complete(conn, spawned.run_id, "r")
        else:
            fail(conn, spawned.run_id)
    before_task = task_row(conn, spawned.task_id)
    before_run = run_row(conn, spawned.run_id)
    clock.advance(10)
    cancel(conn, spawned.task_id)
    assert task_row(conn, spawned.task_id) == before_task
    assert run_row(conn, spawned.run_id) == before_run


def test_cancel_an_unknown_task(conn, clock):
    ghost = uuid.uuid4()
    with raises_db("P0001", f'Task "{ghost}" not found in queue "{Q}"'):
        cancel(conn, ghost)


def test_cancel_accepts_a_text_task_id(conn, clock):
    spawned = spawn(conn)
    cancel(conn, str(spawned.task_id))
    assert task_row(conn, spawned.task_id)["state"] == "cancelled"


def test_work_on_a_cancelled_task_is_refused(conn, clock):
    spawned = spawn(conn)
    claim_one(conn)
    cancel(conn, spawned.task_id)
    with raises_db("AB001"):
        complete(conn, spawned.run_id)
    with raises_db("AB001"):
        fail(conn, spawned.run_id)
    with raises_db("P0001", "is not currently running"):
        schedule(conn, spawned.run_id, clock.now)
    assert task_row(conn, spawned.task_id)["state"] == "cancelled"


# --- retry_task -----------------------------------------------------------------------------


def test_retry_in_place_adds_an_attempt(conn, clock):
    spawned = failed_task(conn, max_attempts=1)
    clock.advance(5)
    result = retry(conn, spawned.task_id)
    assert result.task_id == spawned.task_id
    assert result.attempt == 2
    assert result.created is False
    runs = runs_of(conn, spawned.task_id)
    assert [r["state"] for r in runs] == ["failed", "pending"]
    new_run = runs[1]
    assert new_run["run_id"] == result.run_id
    assert new_run["attempt"] == 2
    assert new_run["available_at"] == clock.now
    task = task_row(conn, spawned.task_id)
    assert task["state"] == "pending"
    assert task["max_attempts"] == 2  # coalesce(max_attempts, attempts) + 1
    assert task["attempts"] == 2
    assert task["last_attempt_run"] == result.run_id
    assert task["cancelled_at"] is None

    row = claim_one(conn)
    assert (row["run_id"], row["attempt"]) == (result.run_id, 2)
    complete(conn, row["run_id"], "second time lucky")
    assert task_result(conn, spawned.task_id)["state"] == "completed"


def test_retry_in_place_with_a_max_attempts_override(conn, clock):
    spawned = failed_task(conn, max_attempts=2)
    result = retry(conn, spawned.task_id, max_attempts=5)
    assert result.attempt == 3
    assert task_row(conn, spawned.task_id)["max_attempts"] == 5
    # The override leaves room for more automatic retries.
    run = claim_one(conn)
    fail(conn, run["run_id"])
    assert task_row(conn, spawned.task_id)["state"] == "pending"


@pytest.mark.parametrize("override", [1, 2])
def test_retry_in_place_needs_room_for_another_attempt(conn, clock, override):
    spawned = failed_task(conn, max_attempts=2)
    with raises_db("P0001", f"max_attempts ({override}) must be greater than current attempts (2)"):
        retry(conn, spawned.task_id, max_attempts=override)
    assert task_row(conn, spawned.task_id)["state"] == "failed"
    assert len(runs_of(conn, spawned.task_id)) == 2


@pytest.mark.parametrize("override", [0, -1])
def test_retry_rejects_max_attempts_below_one(conn, clock, override):
    spawned = failed_task(conn)
    with raises_db("P0001", "max_attempts must be >= 1"):
        retry(conn, spawned.task_id, max_attempts=override)
    with raises_db("P0001", "max_attempts must be >= 1"):
        retry(conn, spawned.task_id, max_attempts=override, spawn_new=True)
    assert count(conn, "t") == 1


def test_retry_of_an_unknown_task(conn, clock):
    ghost = uuid.uuid4()
    with raises_db("P0001", f'Task "{ghost}" not found in queue "{Q}"'):
        retry(conn, ghost)


def test_retry_requires_a_failed_task_in_both_modes(conn, clock):
    # Every other state is covered by the refusal table in test_state_machine.
    spawned = spawn(conn)
    with raises_db("P0001", f'Task "{spawned.task_id}" is not currently failed in queue "{Q}"'):
        retry(conn, spawned.task_id)
    with raises_db("P0001", f'Task "{spawned.task_id}" is not currently failed in queue "{Q}"'):
        retry(conn, spawned.task_id, spawn_new=True)
    assert count(conn, "t") == 1
    assert task_row(conn, spawned.task_id)["state"] == "pending"


def test_retry_spawn_new_copies_the_inputs(conn, clock):
    options = {
        "headers": {"trace": "t-1"},
        "retry_strategy": {"kind": "fixed", "base_seconds": 3},
        "cancellation": {"max_duration": 600},
        "idempotency_key": "orig-key",
    }
    spawned = spawn(conn, name="import", params={"file": "a.csv"}, max_attempts=1, **options)
    claim_one(conn)
    fail(conn, spawned.run_id)
    clock.advance(7)

    result = retry(conn, spawned.task_id, spawn_new=True)
    assert result.created is True
    assert result.attempt == 1
    assert result.task_id != spawned.task_id

    new = task_row(conn, result.task_id)
    assert new["task_name"] == "import"
    assert new["params"] == {"file": "a.csv"}
    assert new["headers"] == options["headers"]
    assert new["retry_strategy"] == options["retry_strategy"]
    assert new["cancellation"] == options["cancellation"]
    assert new["max_attempts"] == 1
    assert new["idempotency_key"] is None
    assert new["state"] == "pending"
    assert new["attempts"] == 1
    assert new["last_attempt_run"] == result.run_id
    assert new["enqueue_at"] == clock.now
    assert run_row(conn, result.run_id)["state"] == "pending"

    old = task_row(conn, spawned.task_id)
    assert old["state"] == "failed"
    assert len(runs_of(conn, spawned.task_id)) == 1


def test_retry_spawn_new_with_a_max_attempts_override(conn, clock):
    spawned = failed_task(conn, max_attempts=1)
    result = retry(conn, spawned.task_id, spawn_new=True, max_attempts=9)
    assert task_row(conn, result.task_id)["max_attempts"] == 9


def test_retry_accepts_the_dashboard_call_shape(conn, clock):
    spawned = failed_task(conn)
    row = conn.execute(
        "SELECT task_id, run_id, attempt, created FROM absurd.retry_task(%s, %s, %s::jsonb)",
        (Q, str(spawned.task_id), json.dumps({})),
    ).fetchone()
    assert row[0] == spawned.task_id and row[2] == 2 and row[3] is False


def test_retry_options_default_to_empty(conn, clock):
    spawned = failed_task(conn)
    row = conn.execute(
        "SELECT attempt, created FROM absurd.retry_task(%s, %s)", (Q, spawned.task_id)
    ).fetchone()
    assert row == (2, False)


# --- get_task_result ------------------------------------------------------------------------


def test_result_of_a_completed_task(conn, clock):
    spawned = spawn(conn)
    claim_one(conn)
    complete(conn, spawned.run_id, {"total": 3})
    assert task_result(conn, spawned.task_id) == {
        "task_id": spawned.task_id,
        "state": "completed",
        "result": {"total": 3},
        "failure_reason": None,
    }


def test_result_of_a_failed_task_is_the_last_runs_failure(conn, clock):
    spawned = failed_task(conn, max_attempts=2)
    assert task_result(conn, spawned.task_id) == {
        "task_id": spawned.task_id,
        "state": "failed",
        "result": None,
        "failure_reason": {"name": "Error", "message": "attempt 2"},
    }


def test_result_of_a_cancelled_task_has_neither(conn, clock):
    spawned = spawn(conn)
    claim_one(conn)
    cancel(conn, spawned.task_id)
    assert task_result(conn, spawned.task_id) == {
        "task_id": spawned.task_id,
        "state": "cancelled",
        "result": None,
        "failure_reason": None,
    }


def test_result_while_in_progress(conn, clock):
    spawned = spawn(conn, max_attempts=3)
    assert task_result(conn, spawned.task_id)["state"] == "pending"
    claim_one(conn)
    assert task_result(conn, spawned.task_id)["state"] == "running"
    fail(conn, spawned.run_id, {"name": "Transient"})
    # Not failed yet (a retry is pending): no failure_reason is reported.
    assert task_result(conn, spawned.task_id) == {
        "task_id": spawned.task_id,
        "state": "pending",
        "result": None,
        "failure_reason": None,
    }


def test_result_of_an_unknown_task_is_no_row(conn, clock):
    assert task_result(conn, uuid.uuid4()) is None
    assert task_result(conn, str(uuid.uuid4())) is None
