"""absurd.claim_task: ordering, batch size, leases, state mirroring and the two sweeps."""

from __future__ import annotations

from datetime import timedelta

import pytest
from psycopg.rows import dict_row

from .helpers import (
    T0,
    FakeClock,
    Q,
    await_event,
    claim,
    claim_one,
    complete,
    create_queue,
    force_update,
    raises_db,
    run_row,
    runs_of,
    schedule,
    set_checkpoint,
    spawn,
    task_row,
    wait_rows,
)

CLAIM_COLUMNS = [
    "run_id",
    "task_id",
    "attempt",
    "task_name",
    "params",
    "retry_strategy",
    "max_attempts",
    "headers",
    "wake_event",
    "event_payload",
]


@pytest.fixture
def clock(conn):
    create_queue(conn)
    return FakeClock(conn)


def test_claim_returns_the_contract_columns(conn, clock):
    spawned = spawn(
        conn,
        name="resize",
        params={"w": 10},
        headers={"h": 1},
        retry_strategy={"kind": "fixed", "base_seconds": 5},
        max_attempts=4,
    )
    cur = conn.cursor(row_factory=dict_row)
    rows = cur.execute(
        "SELECT * FROM absurd.claim_task(%s, %s, %s, %s)", (Q, "w", 60, 1)
    ).fetchall()
    assert [c.name for c in cur.description] == CLAIM_COLUMNS
    assert rows == [
        {
            "run_id": spawned.run_id,
            "task_id": spawned.task_id,
            "attempt": 1,
            "task_name": "resize",
            "params": {"w": 10},
            "retry_strategy": {"kind": "fixed", "base_seconds": 5},
            "max_attempts": 4,
            "headers": {"h": 1},
            "wake_event": None,
            "event_payload": None,
        }
    ]


def test_claim_on_an_empty_queue_returns_nothing(conn, clock):
    assert claim(conn) == []


def test_claim_defaults_to_one_run_with_a_30_second_lease(conn, clock):
    spawn(conn)
    spawn(conn)
    rows = conn.execute("SELECT run_id FROM absurd.claim_task(%s, %s)", (Q, "w")).fetchall()
    assert len(rows) == 1
    assert run_row(conn, rows[0][0])["claim_expires_at"] == T0 + timedelta(seconds=30)


def test_claim_orders_by_available_at_then_run_id(conn, clock):
    clock.set(T0 + timedelta(seconds=10))
    late = spawn(conn, name="late")
    clock.set(T0)
    same_time = [spawn(conn, name=f"early-{i}") for i in range(3)]
    clock.set(T0 + timedelta(seconds=20))
    rows = claim(conn, qty=10)
    by_run_id = sorted(s.run_id for s in same_time)
    assert [r["run_id"] for r in rows] == [*by_run_id, late.run_id]


def test_claim_respects_qty(conn, clock):
    spawned = [spawn(conn) for _ in range(5)]
    first = claim(conn, qty=2)
    second = claim(conn, qty=10)
    assert len(first) == 2 and len(second) == 3
    assert {r["run_id"] for r in first + second} == {s.run_id for s in spawned}
    assert claim(conn, qty=10) == []


@pytest.mark.parametrize("qty", [0, -3, None])
def test_claim_qty_below_one_means_one(conn, clock, qty):
    spawn(conn)
    spawn(conn)
    assert len(claim(conn, qty=qty)) == 1


def test_claim_timeout_sets_the_lease_end(conn, clock):
    spawn(conn)
    row = claim_one(conn, timeout=45)
    assert run_row(conn, row["run_id"])["claim_expires_at"] == T0 + timedelta(seconds=45)


@pytest.mark.parametrize("timeout", [0, -10])
def test_claim_timeout_zero_or_negative_means_no_lease(conn, clock, timeout):
    spawn(conn)
    row = claim_one(conn, timeout=timeout)
    assert run_row(conn, row["run_id"])["claim_expires_at"] is None
    # A run without a lease never expires.
    clock.advance(365 * 24 * 3600)
    assert claim(conn) == []
    assert run_row(conn, row["run_id"])["state"] == "running"


def test_claim_null_timeout_means_30_seconds(conn, clock):
    spawn(conn)
    row = claim_one(conn, timeout=None)
    assert run_row(conn, row["run_id"])["claim_expires_at"] == T0 + timedelta(seconds=30)


def test_claim_records_the_worker_id(conn, clock):
    spawn(conn)
    row = claim_one(conn, worker="host-1:42")
    assert run_row(conn, row["run_id"])["claimed_by"] == "host-1:42"


def test_empty_worker_id_becomes_worker(conn, clock):
    spawn(conn)
    row = claim_one(conn, worker="")
    assert run_row(conn, row["run_id"])["claimed_by"] == "worker"


def test_claim_marks_run_and_task_running(conn, clock):
    spawned = spawn(conn)
    clock.advance(5)
    claim_one(conn, worker="w1", timeout=60)
    run = run_row(conn, spawned.run_id)
    assert run["state"] == "running"
    assert run["claimed_by"] == "w1"
    assert run["started_at"] == clock.now
    assert run["available_at"] == clock.now
    assert run["claim_expires_at"] == clock.now + timedelta(seconds=60)
    task = task_row(conn, spawned.task_id)
    assert task["state"] == "running"
    assert task["attempts"] == 1
    assert task["first_started_at"] == clock.now
    assert task["last_attempt_run"] == spawned.run_id


def test_reclaim_after_a_sleep_keeps_run_attempt_and_first_start(conn, clock):
    spawned = spawn(conn)
    first_claim_at = clock.now
    claim_one(conn)
    schedule(conn, spawned.run_id, clock.now + timedelta(seconds=60))
    clock.advance(30)
    assert claim(conn) == []
    clock.advance(31)
    row = claim_one(conn)
    assert (row["run_id"], row["attempt"]) == (spawned.run_id, 1)
    run = run_row(conn, spawned.run_id)
    assert run["started_at"] == clock.now  # set on every claim
    task = task_row(conn, spawned.task_id)
    assert task["first_started_at"] == first_claim_at  # set on the first claim only
    assert task["attempts"] == 1
    assert task["state"] == "running"


def test_runs_not_yet_available_are_not_claimed(conn, clock):
    spawned = spawn(conn)
    claim_one(conn)
    schedule(conn, spawned.run_id, clock.now + timedelta(seconds=10))
    clock.advance(9)
    assert claim(conn) == []
    clock.advance(1)
    assert claim_one(conn)["run_id"] == spawned.run_id


@pytest.mark.parametrize("task_state", ["completed", "failed", "cancelled"])
def test_runs_of_finished_tasks_are_never_claimed(conn, clock, task_state):
    # A pending run under a terminal task cannot arise through the public functions;
    # it is forced here to pin down the claim query's task-state filter.
    spawned = spawn(conn)
    force_update(conn, "t", "task_id", spawned.task_id, state=task_state)
    assert claim(conn) == []
    assert run_row(conn, spawned.run_id)["state"] == "pending"


def test_claim_deletes_timed_out_wait_rows_of_the_runs_it_claims(conn, clock):
    spawned = spawn(conn)
    claim_one(conn)
    await_event(conn, spawned.task_id, spawned.run_id, "never", step="wait", timeout=10)
    assert len(wait_rows(conn, run_id=spawned.run_id)) == 1
    clock.advance(10)
    row = claim_one(conn)
    assert row["run_id"] == spawned.run_id
    assert row["wake_event"] == "never"
    assert row["event_payload"] is None
    assert wait_rows(conn, run_id=spawned.run_id) == []


def test_claim_keeps_wait_rows_of_other_runs(conn, clock):
    waiting = spawn(conn, name="waiter")
    claim_one(conn)
    await_event(conn, waiting.task_id, waiting.run_id, "later", step="wait", timeout=100)
    other = spawn(conn, name="other")
    assert claim_one(conn)["run_id"] == other.run_id
    assert len(wait_rows(conn, run_id=waiting.run_id)) == 1


# --- cancellation-policy sweep --------------------------------------------------------


def test_max_delay_cancels_a_task_that_never_started(conn, clock):
    prompt = spawn(conn, cancellation={"max_delay": 60})
    clock.advance(59)
    assert claim_one(conn, timeout=0)["run_id"] == prompt.run_id  # within the delay
    late = spawn(conn, cancellation={"max_delay": 60})
    clock.advance(60)
    assert claim(conn) == []
    task = task_row(conn, late.task_id)
    assert task["state"] == "cancelled"
    assert task["cancelled_at"] == clock.now
    assert run_row(conn, late.run_id)["state"] == "cancelled"
    assert task_row(conn, prompt.task_id)["state"] == "running"


def test_max_delay_is_measured_from_enqueue_and_boundary_is_inclusive(conn, clock):
    spawned = spawn(conn, cancellation={"max_delay": 60})
    clock.advance(60)
    assert claim(conn) == []
    assert task_row(conn, spawned.task_id)["state"] == "cancelled"


def test_max_delay_does_not_apply_once_started(conn, clock):
    spawned = spawn(conn, cancellation={"max_delay": 60})
    claim_one(conn)
    schedule(conn, spawned.run_id, clock.now + timedelta(seconds=300))
    clock.advance(301)
    assert claim_one(conn)["run_id"] == spawned.run_id
    assert task_row(conn, spawned.task_id)["state"] == "running"


def test_max_duration_cancels_a_running_task(conn, clock):
    spawned = spawn(conn, cancellation={"max_duration": 100})
    claim_one(conn, timeout=0)
    clock.advance(99)
    claim(conn)
    assert task_row(conn, spawned.task_id)["state"] == "running"
    clock.advance(1)
    claim(conn)
    task = task_row(conn, spawned.task_id)
    assert task["state"] == "cancelled"
    assert task["cancelled_at"] == clock.now
    assert run_row(conn, spawned.run_id)["state"] == "cancelled"
    with raises_db("AB001"):
        complete(conn, spawned.run_id)


def test_max_duration_cancels_a_sleeping_task_instead_of_waking_it(conn, clock):
    spawned = spawn(conn, cancellation={"max_duration": 100})
    claim_one(conn)
    schedule(conn, spawned.run_id, clock.now + timedelta(seconds=500))
    clock.advance(500)
    assert claim(conn) == []
    assert task_row(conn, spawned.task_id)["state"] == "cancelled"
    assert run_row(conn, spawned.run_id)["state"] == "cancelled"


def test_cancellation_sweep_covers_the_whole_queue_not_just_qty(conn, clock):
    doomed = [spawn(conn, cancellation={"max_delay": 10}) for _ in range(4)]
    clock.advance(5)
    survivor = spawn(conn)
    clock.advance(10)
    rows = claim(conn, qty=1)
    assert [r["run_id"] for r in rows] == [survivor.run_id]
    for spawned in doomed:
        assert task_row(conn, spawned.task_id)["state"] == "cancelled"


def test_cancellation_sweep_leaves_other_queues_alone(conn, clock):
    create_queue(conn, "other")
    elsewhere = spawn(conn, "other", cancellation={"max_delay": 10})
    clock.advance(20)
    claim(conn)
    assert task_row(conn, elsewhere.task_id, "other")["state"] == "pending"


# --- lease-expiry sweep ---------------------------------------------------------------


def test_expired_lease_fails_the_run_with_claim_timeout_and_retries(conn, clock):
    spawned = spawn(conn)
    claim_one(conn, worker="worker-a", timeout=10)
    clock.advance(10)  # claim_expires_at <= now: expired
    row = claim_one(conn, worker="worker-b")
    assert row["task_id"] == spawned.task_id
    assert row["attempt"] == 2
    assert row["run_id"] != spawned.run_id

    old = run_row(conn, spawned.run_id)
    assert old["state"] == "failed"
    assert old["failed_at"] == clock.now
    assert old["claimed_by"] == "worker-a"
    assert old["claim_expires_at"] == T0 + timedelta(seconds=10)
    reason = old["failure_reason"]
    assert set(reason) == {"name", "message", "workerId", "claimExpiredAt", "attempt"}
    assert reason["name"] == "$ClaimTimeout"
    assert reason["message"] == "worker did not finish task within claim interval"
    assert reason["workerId"] == "worker-a"
    assert reason["attempt"] == 1
    expired_at = conn.execute("SELECT %s::timestamptz", (reason["claimExpiredAt"],)).fetchone()[0]
    assert expired_at == T0 + timedelta(seconds=10)

    task = task_row(conn, spawned.task_id)
    assert task["state"] == "running"
    assert task["attempts"] == 2
    assert task["last_attempt_run"] == row["run_id"]
    assert run_row(conn, row["run_id"])["claimed_by"] == "worker-b"


def test_an_expired_leases_retry_keeps_its_place_ahead_of_newer_work(conn, clock):
    # A worker claims the oldest task and dies. Work spawned after that task must not
    # overtake it once the lease runs out: the retry queues where the task stood.
    orphan = spawn(conn, name="orphan")
    claim_one(conn, worker="dead", timeout=10)
    clock.advance(5)
    newer = [spawn(conn, name=f"newer-{n}") for n in range(3)]
    clock.advance(5)
    first = claim_one(conn, worker="alive")
    assert (first["task_id"], first["attempt"]) == (orphan.task_id, 2)
    assert run_row(conn, first["run_id"])["created_at"] == clock.now
    claimed = [row["task_id"] for row in claim(conn, qty=5)]
    assert claimed == [s.task_id for s in newer]


def test_an_expired_leases_retry_with_a_backoff_still_waits_for_it(conn, clock):
    orphan = spawn(conn, retry_strategy={"kind": "fixed", "base_seconds": 30})
    claim_one(conn, timeout=10)
    clock.advance(10)
    newer = spawn(conn)
    assert claim_one(conn)["task_id"] == newer.task_id
    retry_run = runs_of(conn, orphan.task_id)[-1]
    assert (retry_run["state"], retry_run["available_at"]) == (
        "sleeping",
        clock.now + timedelta(seconds=30),
    )


def test_lease_not_yet_expired_is_left_alone(conn, clock):
    spawned = spawn(conn)
    claim_one(conn, timeout=10)
    clock.advance(9)
    assert claim(conn) == []
    assert run_row(conn, spawned.run_id)["state"] == "running"


def test_the_expired_worker_gets_ab002_on_its_next_write(conn, clock):
    spawned = spawn(conn)
    claim_one(conn, worker="worker-a", timeout=10)
    clock.advance(11)
    claim(conn, worker="worker-b")
    with raises_db("AB002", f'Run "{spawned.run_id}" has already failed in queue "{Q}"'):
        set_checkpoint(conn, spawned.task_id, "step", 1, spawned.run_id, extend_by=30)
    with raises_db("AB002"):
        complete(conn, spawned.run_id)


def test_expiry_sweep_is_bounded_by_qty_oldest_first(conn, clock):
    spawn(conn, name="a")
    spawn(conn, name="b")
    late = claim_one(conn, worker="w", timeout=20)
    early = claim_one(conn, worker="w", timeout=10)
    clock.advance(30)
    first = claim_one(conn, qty=1)
    assert (first["task_id"], first["attempt"]) == (early["task_id"], 2)
    assert run_row(conn, early["run_id"])["state"] == "failed"
    assert run_row(conn, late["run_id"])["state"] == "running"
    second = claim_one(conn, qty=1)
    assert (second["task_id"], second["attempt"]) == (late["task_id"], 2)
    assert run_row(conn, late["run_id"])["state"] == "failed"


def test_expired_lease_on_the_last_attempt_fails_the_task(conn, clock):
    spawned = spawn(conn, max_attempts=1)
    claim_one(conn, timeout=5)
    clock.advance(6)
    assert claim(conn) == []
    task = task_row(conn, spawned.task_id)
    assert task["state"] == "failed"
    assert task["last_attempt_run"] == spawned.run_id
    assert len(runs_of(conn, spawned.task_id)) == 1


def test_expired_lease_retry_follows_the_retry_strategy(conn, clock):
    spawned = spawn(conn, retry_strategy={"kind": "fixed", "base_seconds": 60})
    claim_one(conn, timeout=5)
    clock.advance(5)
    assert claim(conn) == []
    retry_run = runs_of(conn, spawned.task_id)[-1]
    assert retry_run["attempt"] == 2
    assert retry_run["state"] == "sleeping"
    assert retry_run["available_at"] == clock.now + timedelta(seconds=60)
    assert task_row(conn, spawned.task_id)["state"] == "sleeping"
