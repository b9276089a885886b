"""complete_run, fail_run (retry strategies, attempts, max_duration) and schedule_run."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from psycopg import sql

from .helpers import (
    T0,
    FakeClock,
    Q,
    await_event,
    cancel,
    claim,
    claim_one,
    complete,
    create_queue,
    fail,
    raises_db,
    run_row,
    runs_of,
    schedule,
    spawn,
    table,
    task_row,
    wait_rows,
)


@pytest.fixture
def clock(conn):
    create_queue(conn)
    return FakeClock(conn)


def add_wait_row(conn, run: dict, step: str = "w", event: str = "e") -> None:
    # W rows of a running run cannot be produced through the public functions (claim
    # clears due waits, emit clears delivered ones); insert one to watch it being removed.
    conn.execute(
        sql.SQL(
            "INSERT INTO {} (run_id, step_name, task_id, event_name, timeout_at, created_at)"
            " VALUES (%s, %s, %s, %s, NULL, absurd.current_time())"
        ).format(table("w")),
        (run["run_id"], step, run["task_id"], event),
    )


# Illegal transitions (complete, fail, schedule from each state) are in test_state_machine.


# --- complete_run ---------------------------------------------------------------------


def test_complete_run_finishes_run_and_task(conn, clock):
    spawned = spawn(conn)
    claim_one(conn)
    clock.advance(3)
    complete(conn, spawned.run_id, {"answer": 42})
    run = run_row(conn, spawned.run_id)
    assert run["state"] == "completed"
    assert run["completed_at"] == clock.now
    assert run["result"] == {"answer": 42}
    task = task_row(conn, spawned.task_id)
    assert task["state"] == "completed"
    assert task["completed_payload"] == {"answer": 42}
    assert task["last_attempt_run"] == spawned.run_id


def test_complete_run_stores_json_null_result(conn, clock):
    spawned = spawn(conn)
    claim_one(conn)
    complete(conn, spawned.run_id, None)  # the SDK sends json.dumps(None)
    assert (
        conn.execute(
            sql.SQL("SELECT jsonb_typeof(completed_payload) FROM {} WHERE task_id = %s").format(
                table("t")
            ),
            (spawned.task_id,),
        ).fetchone()[0]
        == "null"
    )


def test_complete_run_on_a_later_attempt_points_the_task_at_it(conn, clock):
    spawned = spawn(conn)
    claim_one(conn)
    fail(conn, spawned.run_id)
    second = claim_one(conn)
    complete(conn, second["run_id"], "ok")
    task = task_row(conn, spawned.task_id)
    assert task["last_attempt_run"] == second["run_id"]
    assert task["completed_payload"] == "ok"
    assert run_row(conn, spawned.run_id)["state"] == "failed"


def test_complete_run_deletes_the_runs_wait_rows(conn, clock):
    spawn(conn)
    run = claim_one(conn)
    add_wait_row(conn, run)
    complete(conn, run["run_id"])
    assert wait_rows(conn, run_id=run["run_id"]) == []


def test_complete_run_of_an_unknown_run(conn, clock):
    ghost = uuid.uuid4()
    with raises_db("P0001", f'Run "{ghost}" not found in queue "{Q}"'):
        complete(conn, ghost)


def test_complete_run_of_a_cancelled_run_is_ab001(conn, clock):
    spawned = spawn(conn)
    claim_one(conn)
    cancel(conn, spawned.task_id)
    with raises_db("AB001", "Task has been cancelled"):
        complete(conn, spawned.run_id)
    assert task_row(conn, spawned.task_id)["state"] == "cancelled"


def test_complete_run_of_a_failed_run_is_ab002(conn, clock):
    spawned = spawn(conn)
    claim_one(conn)
    fail(conn, spawned.run_id)
    with raises_db("AB002", f'Run "{spawned.run_id}" has already failed in queue "{Q}"'):
        complete(conn, spawned.run_id)


# --- fail_run: the failed run -----------------------------------------------------------


def test_fail_run_marks_the_run_failed_and_keeps_the_claim(conn, clock):
    spawned = spawn(conn)
    claim_one(conn, worker="w9", timeout=60)
    clock.advance(2)
    reason = {"name": "ValueError", "message": "bad input", "traceback": "Traceback ..."}
    fail(conn, spawned.run_id, reason)
    run = run_row(conn, spawned.run_id)
    assert run["state"] == "failed"
    assert run["failed_at"] == clock.now
    assert run["failure_reason"] == reason
    assert run["claimed_by"] == "w9"
    assert run["claim_expires_at"] == T0 + timedelta(seconds=60)
    assert run["wake_event"] is None


def test_fail_run_accepts_a_sleeping_run_and_removes_its_waits(conn, clock):
    spawned = spawn(conn, max_attempts=1)
    claim_one(conn)
    await_event(conn, spawned.task_id, spawned.run_id, "never", step="w", timeout=None)
    assert run_row(conn, spawned.run_id)["wake_event"] == "never"
    fail(conn, spawned.run_id)
    run = run_row(conn, spawned.run_id)
    assert run["state"] == "failed"
    assert run["wake_event"] is None
    assert wait_rows(conn, task_id=spawned.task_id) == []
    assert task_row(conn, spawned.task_id)["state"] == "failed"


def test_fail_run_deletes_the_runs_wait_rows(conn, clock):
    spawn(conn)
    run = claim_one(conn)
    add_wait_row(conn, run)
    fail(conn, run["run_id"])
    assert wait_rows(conn, run_id=run["run_id"]) == []


def test_fail_run_of_an_unknown_run(conn, clock):
    ghost = uuid.uuid4()
    with raises_db("P0001", f'Run "{ghost}" cannot be failed in queue "{Q}"'):
        fail(conn, ghost)


def test_fail_run_of_a_cancelled_run_is_ab001(conn, clock):
    spawned = spawn(conn)
    claim_one(conn)
    cancel(conn, spawned.task_id)
    with raises_db("AB001", "Task has been cancelled"):
        fail(conn, spawned.run_id)


def test_fail_run_twice_is_ab002(conn, clock):
    spawned = spawn(conn)
    claim_one(conn)
    fail(conn, spawned.run_id)
    with raises_db("AB002", f'Run "{spawned.run_id}" has already failed in queue "{Q}"'):
        fail(conn, spawned.run_id)
    assert len(runs_of(conn, spawned.task_id)) == 2


# --- fail_run: the retry decision -------------------------------------------------------


def fail_attempts(conn, clock, spawned, n: int) -> list[dict]:
    """Claim and fail the task n times, stepping the clock past every retry delay."""
    for _ in range(n):
        latest = runs_of(conn, spawned.task_id)[-1]
        clock.set(max(clock.now, latest["available_at"]))
        run = claim_one(conn, timeout=0)
        fail(conn, run["run_id"])
    return runs_of(conn, spawned.task_id)


def test_no_strategy_retries_immediately_as_pending(conn, clock):
    spawned = spawn(conn)
    claim_one(conn)
    fail(conn, spawned.run_id)
    runs = runs_of(conn, spawned.task_id)
    assert [r["attempt"] for r in runs] == [1, 2]
    retry_run = runs[1]
    assert retry_run["state"] == "pending"
    assert retry_run["available_at"] == clock.now
    assert retry_run["run_id"] != spawned.run_id
    task = task_row(conn, spawned.task_id)
    assert task["state"] == "pending"
    assert task["attempts"] == 2
    assert task["last_attempt_run"] == retry_run["run_id"]
    assert claim_one(conn)["run_id"] == retry_run["run_id"]


RETRY_DELAYS = [
    ({"kind": "fixed"}, [60, 60, 60]),
    ({"kind": "fixed", "base_seconds": 7}, [7, 7, 7]),
    ({"kind": "exponential"}, [30, 60, 120]),
    ({"kind": "exponential", "base_seconds": 2, "factor": 3}, [2, 6, 18]),
    ({"kind": "exponential", "base_seconds": 10, "max_seconds": 25}, [10, 20, 25]),
    ({"kind": "exponential", "base_seconds": 1.5}, [1.5, 3, 6]),
    ({"kind": "fixed", "base_seconds": 0}, [0, 0, 0]),
    ({"kind": "none", "base_seconds": 99}, [0, 0, 0]),
    ({"base_seconds": 99}, [0, 0, 0]),
    ({"kind": "exponential", "base_seconds": "4", "factor": "0.5"}, [4, 2, 1]),
    ({"kind": "exponential", "base_seconds": 86400, "factor": 1e300}, [86400, 86400, 86400]),
]


def test_retry_delays(conn, clock):
    for number, (strategy, delays) in enumerate(RETRY_DELAYS):
        q = create_queue(conn, f"strategy-{number}")
        spawned = spawn(conn, q, retry_strategy=strategy)
        for attempt, delay in enumerate(delays, start=1):
            latest = runs_of(conn, spawned.task_id, q)[-1]
            assert latest["attempt"] == attempt
            clock.set(max(clock.now, latest["available_at"]))
            run = claim_one(conn, q, timeout=0)
            clock.advance(1)
            failed_at = clock.now
            fail(conn, run["run_id"], q=q)
            retry_run = runs_of(conn, spawned.task_id, q)[-1]
            where = f"{strategy} attempt {attempt}"
            assert retry_run["attempt"] == attempt + 1, where
            assert retry_run["available_at"] == failed_at + timedelta(seconds=delay), where
            expected_state = "sleeping" if delay > 0 else "pending"
            assert retry_run["state"] == expected_state, where
            assert task_row(conn, spawned.task_id, q)["state"] == expected_state, where


def test_sleeping_retry_is_claimed_only_when_due(conn, clock):
    spawned = spawn(conn, retry_strategy={"kind": "fixed", "base_seconds": 30})
    claim_one(conn)
    fail(conn, spawned.run_id)
    clock.advance(29)
    assert claim(conn) == []
    clock.advance(1)
    row = claim_one(conn)
    assert (row["task_id"], row["attempt"]) == (spawned.task_id, 2)


def test_max_attempts_exhaustion_fails_the_task(conn, clock):
    spawned = spawn(conn, max_attempts=3)
    runs = fail_attempts(conn, clock, spawned, 3)
    assert [r["attempt"] for r in runs] == [1, 2, 3]
    assert [r["state"] for r in runs] == ["failed", "failed", "failed"]
    task = task_row(conn, spawned.task_id)
    assert task["state"] == "failed"
    assert task["attempts"] == 3
    assert task["last_attempt_run"] == runs[-1]["run_id"]
    assert claim(conn) == []


def test_max_attempts_one_fails_at_once(conn, clock):
    spawned = spawn(conn, max_attempts=1)
    claim_one(conn)
    fail(conn, spawned.run_id)
    assert len(runs_of(conn, spawned.task_id)) == 1
    task = task_row(conn, spawned.task_id)
    assert task["state"] == "failed"
    assert task["last_attempt_run"] == spawned.run_id


def test_null_max_attempts_retries_without_limit(conn, clock):
    spawned = spawn(conn)
    runs = fail_attempts(conn, clock, spawned, 8)
    assert len(runs) == 9
    assert runs[-1]["state"] == "pending"
    assert task_row(conn, spawned.task_id)["attempts"] == 9


def test_explicit_retry_at_in_the_future(conn, clock):
    spawned = spawn(conn, retry_strategy={"kind": "fixed", "base_seconds": 5})
    claim_one(conn)
    at = clock.now + timedelta(minutes=10)
    fail(conn, spawned.run_id, retry_at=at)
    retry_run = runs_of(conn, spawned.task_id)[-1]
    assert retry_run["available_at"] == at
    assert retry_run["state"] == "sleeping"
    assert task_row(conn, spawned.task_id)["state"] == "sleeping"


def test_explicit_retry_at_in_the_past_means_now(conn, clock):
    spawned = spawn(conn)
    claim_one(conn)
    fail(conn, spawned.run_id, retry_at=clock.now - timedelta(hours=1))
    retry_run = runs_of(conn, spawned.task_id)[-1]
    assert retry_run["available_at"] == clock.now
    assert retry_run["state"] == "pending"


def test_retry_that_would_exceed_max_duration_cancels_the_task(conn, clock):
    spawned = spawn(
        conn,
        retry_strategy={"kind": "fixed", "base_seconds": 60},
        cancellation={"max_duration": 100},
    )
    claim_one(conn, timeout=0)  # first_started_at = T0
    clock.advance(40)  # retry would be at T0+100: 100 >= 100
    fail(conn, spawned.run_id)
    runs = runs_of(conn, spawned.task_id)
    assert len(runs) == 1
    assert runs[0]["state"] == "failed"
    task = task_row(conn, spawned.task_id)
    assert task["state"] == "cancelled"
    assert task["cancelled_at"] == clock.now


def test_retry_within_max_duration_is_scheduled(conn, clock):
    spawned = spawn(
        conn,
        retry_strategy={"kind": "fixed", "base_seconds": 60},
        cancellation={"max_duration": 100},
    )
    claim_one(conn, timeout=0)
    clock.advance(39)  # retry at T0+99 < T0+100
    fail(conn, spawned.run_id)
    runs = runs_of(conn, spawned.task_id)
    assert [r["state"] for r in runs] == ["failed", "sleeping"]
    assert task_row(conn, spawned.task_id)["state"] == "sleeping"


def test_max_duration_check_uses_an_explicit_retry_at(conn, clock):
    spawned = spawn(conn, cancellation={"max_duration": 100})
    claim_one(conn, timeout=0)
    fail(conn, spawned.run_id, retry_at=T0 + timedelta(seconds=150))
    assert task_row(conn, spawned.task_id)["state"] == "cancelled"
    assert len(runs_of(conn, spawned.task_id)) == 1


# --- schedule_run -----------------------------------------------------------------------


def test_schedule_run_puts_run_and_task_to_sleep(conn, clock):
    spawned = spawn(conn)
    claim_one(conn, worker="w", timeout=60)
    wake = clock.now + timedelta(minutes=5)
    schedule(conn, spawned.run_id, wake)
    run = run_row(conn, spawned.run_id)
    assert run["state"] == "sleeping"
    assert run["available_at"] == wake
    assert run["claimed_by"] is None
    assert run["claim_expires_at"] is None
    assert run["wake_event"] is None
    assert run["attempt"] == 1
    task = task_row(conn, spawned.task_id)
    assert task["state"] == "sleeping"
    assert task["attempts"] == 1


def test_schedule_run_clears_a_timed_out_wake_event(conn, clock):
    spawned = spawn(conn)
    claim_one(conn)
    await_event(conn, spawned.task_id, spawned.run_id, "e", step="w", timeout=5)
    clock.advance(5)
    assert claim_one(conn)["wake_event"] == "e"
    schedule(conn, spawned.run_id, clock.now + timedelta(seconds=30))
    assert run_row(conn, spawned.run_id)["wake_event"] is None


def test_schedule_run_in_the_past_is_claimable_at_once(conn, clock):
    spawned = spawn(conn)
    claim_one(conn)
    schedule(conn, spawned.run_id, clock.now - timedelta(days=1))
    assert claim_one(conn)["run_id"] == spawned.run_id


def test_schedule_run_with_current_time_expressions_as_the_sdk_calls_it(conn, clock):
    sleeper = spawn(conn, name="sleeper")
    deferred = spawn(conn, name="unknown")
    runs = {row["task_id"]: row["run_id"] for row in claim(conn, qty=2)}
    # ctx.sleep_for: a float number of seconds.
    conn.execute(
        "SELECT absurd.schedule_run(%s, %s, absurd.current_time() + make_interval(secs => %s::double precision))",
        (Q, runs[sleeper.task_id], 2.5),
    )
    # The deferral of a task the worker does not know: whole seconds.
    conn.execute(
        "SELECT absurd.schedule_run(%s, %s, absurd.current_time() + make_interval(secs => %s::int))",
        (Q, runs[deferred.task_id], 20),
    )
    assert run_row(conn, sleeper.run_id)["available_at"] == clock.now + timedelta(seconds=2.5)
    assert run_row(conn, deferred.run_id)["available_at"] == clock.now + timedelta(seconds=20)


@pytest.mark.parametrize(
    ("retryable", "expected"), [(False, "failed"), (True, "pending"), ("false", "pending")]
)
def test_fail_run_with_retryable_false_fails_the_task_now(conn, clock, retryable, expected):
    """Our extension: only the JSON boolean false ends the task despite attempts left."""
    spawned = spawn(conn, max_attempts=5)
    run = claim_one(conn)
    fail(conn, run["run_id"], {"name": "Permanent", "message": "no", "retryable": retryable})
    task = task_row(conn, spawned.task_id)
    assert task["state"] == expected
    assert task["max_attempts"] == 5
    assert len(runs_of(conn, spawned.task_id)) == (1 if expected == "failed" else 2)
    if expected == "failed":
        assert task["last_attempt_run"] == run["run_id"]
