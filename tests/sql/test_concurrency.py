"""Two connections at once: idempotent spawn races, SKIP LOCKED claims, lease expiry and
reclaim, emit racing await, and cancel racing complete without deadlocks."""

from __future__ import annotations

import threading

import psycopg
import pytest
from support import wait_until

from .helpers import (
    FakeClock,
    Q,
    await_event,
    backend_waiting_on_lock,
    cancel,
    checkpoint_rows,
    claim,
    claim_one,
    complete,
    count,
    create_queue,
    emit,
    extend,
    fail,
    in_thread,
    raises_db,
    run_row,
    runs_of,
    set_checkpoint,
    spawn,
    task_row,
)

GUARD = "SET statement_timeout = '20s'"  # a hang fails the test instead of the session


@pytest.fixture
def pair(conn, connect):
    """Two more connections besides `conn` (which observes), with statement timeouts."""
    create_queue(conn)
    a, b = connect(), connect()
    for c in (conn, a, b):
        c.execute(GUARD)
    return a, b


def blocked_or_done(observer, other: psycopg.Connection, result) -> bool:
    return result.done.is_set() or backend_waiting_on_lock(observer, other.info.backend_pid)


def join(thread, result, timeout: float = 20.0):
    thread.join(timeout)
    assert not thread.is_alive(), "background call did not finish"
    return result


# --- idempotent spawn ---------------------------------------------------------------------


def test_idempotent_spawn_waits_for_a_concurrent_insert_and_returns_it(conn, pair):
    a, b = pair
    with a.transaction():
        first = spawn(a, idempotency_key="k")
        thread, result = in_thread(lambda: spawn(b, idempotency_key="k"))
        wait_until(lambda: blocked_or_done(conn, b, result))
    join(thread, result)
    assert result.error is None, result.error
    second = result.value
    assert first.created is True
    assert (second.task_id, second.run_id, second.attempt, second.created) == (
        first.task_id,
        first.run_id,
        1,
        False,
    )
    assert count(conn, "t") == 1
    assert count(conn, "r") == 1


def test_idempotent_spawn_creates_when_the_concurrent_insert_rolls_back(conn, pair):
    a, b = pair
    with pytest.raises(RuntimeError), a.transaction():
        spawn(a, idempotency_key="k")
        thread, result = in_thread(lambda: spawn(b, idempotency_key="k"))
        wait_until(lambda: blocked_or_done(conn, b, result))
        raise RuntimeError("roll back the first spawn")
    join(thread, result)
    assert result.error is None, result.error
    assert result.value.created is True
    assert count(conn, "t") == 1
    assert task_row(conn, result.value.task_id)["idempotency_key"] == "k"


def test_idempotent_spawn_race_many_times(conn, pair):
    a, b = pair
    for i in range(25):
        key = f"race-{i}"
        barrier = threading.Barrier(2)

        def go(c, key=key, barrier=barrier):
            barrier.wait(5)
            return spawn(c, idempotency_key=key)

        threads = [in_thread(lambda c=c: go(c)) for c in (a, b)]
        results = [join(t, r) for t, r in threads]
        for r in results:
            assert r.error is None, r.error
        x, y = results[0].value, results[1].value
        assert x.task_id == y.task_id
        assert x.run_id == y.run_id
        assert sorted([x.created, y.created]) == [False, True]
    assert count(conn, "t") == 25
    assert count(conn, "r") == 25


# --- claims -------------------------------------------------------------------------------


def test_a_locked_run_is_skipped_not_waited_for(conn, pair):
    a, b = pair
    first = spawn(conn, name="first")
    second = spawn(conn, name="second")
    with a.transaction():
        held = claim_one(a)
        # b must not block on a's uncommitted claim: SKIP LOCKED hands it the other run.
        other = claim_one(b)
        assert {held["run_id"], other["run_id"]} == {first.run_id, second.run_id}
        assert claim(b) == []
    assert run_row(conn, held["run_id"])["state"] == "running"
    assert run_row(conn, other["run_id"])["state"] == "running"


def test_two_workers_never_claim_the_same_run(conn, pair):
    a, b = pair
    spawned = {spawn(conn, params=i).run_id for i in range(60)}
    barrier = threading.Barrier(2)

    def worker(c, name):
        got = []
        barrier.wait(5)
        while True:
            rows = claim(c, worker=name, qty=2)
            if not rows:
                return got
            got.extend(r["run_id"] for r in rows)

    (ta, ra), (tb, rb) = in_thread(lambda: worker(a, "a")), in_thread(lambda: worker(b, "b"))
    join(ta, ra)
    join(tb, rb)
    assert ra.error is None and rb.error is None, (ra.error, rb.error)
    assert not set(ra.value) & set(rb.value), "a run was claimed twice"
    assert len(ra.value) + len(rb.value) == 60
    assert set(ra.value) | set(rb.value) == spawned
    claimed_by = dict(conn.execute('SELECT run_id, claimed_by FROM absurd."r_jobs"').fetchall())
    assert all(claimed_by[r] == "a" for r in ra.value)
    assert all(claimed_by[r] == "b" for r in rb.value)


def test_expired_lease_is_reclaimed_by_another_worker(conn, pair):
    a, b = pair
    clock = FakeClock(conn, a, b)
    spawned = spawn(conn)
    old = claim_one(a, worker="worker-a", timeout=10)
    set_checkpoint(a, spawned.task_id, "one", 1, old["run_id"], extend_by=10)  # lease to +10
    clock.advance(11)

    new = claim_one(b, worker="worker-b", timeout=60)
    assert new["task_id"] == spawned.task_id
    assert new["attempt"] == 2
    reason = run_row(conn, old["run_id"])["failure_reason"]
    assert reason["name"] == "$ClaimTimeout"
    assert reason["workerId"] == "worker-a"
    assert reason["attempt"] == 1

    # The new attempt sees the checkpoint the old one wrote.
    assert [c["state"] for c in checkpoint_rows(conn, spawned.task_id).values()] == [1]

    # The old worker wakes up late: every write it tries is refused with AB002.
    with raises_db("AB002", f'Run "{old["run_id"]}" has already failed in queue "{Q}"'):
        set_checkpoint(a, spawned.task_id, "two", 2, old["run_id"], extend_by=10)
    with raises_db("AB002"):
        extend(a, old["run_id"], 10)
    with raises_db("AB002"):
        complete(a, old["run_id"], "stale")
    with raises_db("AB002"):
        fail(a, old["run_id"])

    complete(b, new["run_id"], "fresh")
    task = task_row(conn, spawned.task_id)
    assert task["state"] == "completed"
    assert task["completed_payload"] == "fresh"
    assert [r["state"] for r in runs_of(conn, spawned.task_id)] == ["failed", "completed"]


def test_expired_lease_sweep_and_reclaim_race_between_workers(conn, pair):
    a, b = pair
    clock = FakeClock(conn, a, b)
    for _ in range(6):
        spawn(conn)
    claim(conn, worker="dead", timeout=5, qty=6)
    clock.advance(6)
    barrier = threading.Barrier(2)

    def worker(c, name):
        got = []
        barrier.wait(5)
        for _ in range(20):
            got.extend(r["run_id"] for r in claim(c, worker=name, qty=1))
        return got

    (ta, ra), (tb, rb) = in_thread(lambda: worker(a, "a")), in_thread(lambda: worker(b, "b"))
    join(ta, ra)
    join(tb, rb)
    assert ra.error is None and rb.error is None, (ra.error, rb.error)
    assert not set(ra.value) & set(rb.value)
    assert len(ra.value) + len(rb.value) == 6
    states = conn.execute(
        'SELECT attempt, state, count(*) FROM absurd."r_jobs" GROUP BY 1, 2 ORDER BY 1'
    ).fetchall()
    assert states == [(1, "failed", 6), (2, "running", 6)]


# --- events -------------------------------------------------------------------------------


def test_emit_racing_await_never_loses_a_wake_up(conn, pair):
    a, b = pair
    for i in range(50):
        event = f"race-{i}"
        spawned = spawn(conn, params=i)
        run = claim_one(conn, timeout=0)
        assert run["run_id"] == spawned.run_id
        barrier = threading.Barrier(2)

        def waiter(event=event, barrier=barrier, task_id=spawned.task_id, run_id=spawned.run_id):
            barrier.wait(5)
            return await_event(a, task_id, run_id, event, step="w")

        def emitter(event=event, barrier=barrier, i=i):
            barrier.wait(5)
            emit(b, event, {"i": i})

        tw, rw = in_thread(waiter)
        te, re_ = in_thread(emitter)
        join(tw, rw)
        join(te, re_)
        assert rw.error is None and re_.error is None, (rw.error, re_.error)

        state = run_row(conn, spawned.run_id)
        if rw.value.should_suspend:
            # The wait was registered first: the emit must have woken it.
            assert state["state"] == "pending", f"iteration {i}: wake-up lost"
            assert state["event_payload"] == {"i": i}
        else:
            assert rw.value.payload == {"i": i}
            assert state["state"] == "running"
        assert checkpoint_rows(conn, spawned.task_id)["w"]["state"] == {"i": i}
        complete_when_ready(conn, spawned.run_id, state["state"])


def complete_when_ready(conn, run_id, state):
    if state == "pending":
        assert claim_one(conn, timeout=0)["run_id"] == run_id
    complete(conn, run_id)


# --- cancel racing complete and fail -----------------------------------------------------


def test_complete_holding_locks_then_cancel(conn, pair):
    a, b = pair
    spawned = spawn(conn)
    claim_one(conn)
    with a.transaction():
        complete(a, spawned.run_id, "won")
        thread, result = in_thread(lambda: cancel(b, spawned.task_id))
        wait_until(lambda: blocked_or_done(conn, b, result))
    join(thread, result)
    assert result.error is None, result.error  # cancel of a completed task is a no-op
    assert task_row(conn, spawned.task_id)["state"] == "completed"
    assert run_row(conn, spawned.run_id)["state"] == "completed"


def test_cancel_holding_locks_then_complete(conn, pair):
    a, b = pair
    spawned = spawn(conn)
    claim_one(conn)
    with b.transaction():
        cancel(b, spawned.task_id)
        thread, result = in_thread(lambda: complete(a, spawned.run_id, "lost"))
        wait_until(lambda: blocked_or_done(conn, a, result))
    join(thread, result)
    assert isinstance(result.error, psycopg.Error), result.error
    assert result.error.sqlstate == "AB001"
    task = task_row(conn, spawned.task_id)
    assert task["state"] == "cancelled"
    assert task["completed_payload"] is None
    assert run_row(conn, spawned.run_id)["state"] == "cancelled"


def test_fail_holding_locks_then_cancel(conn, pair):
    a, b = pair
    spawned = spawn(conn, max_attempts=3)
    claim_one(conn)
    with a.transaction():
        fail(a, spawned.run_id)
        thread, result = in_thread(lambda: cancel(b, spawned.task_id))
        wait_until(lambda: blocked_or_done(conn, b, result))
    join(thread, result)
    assert result.error is None, result.error
    assert task_row(conn, spawned.task_id)["state"] == "cancelled"
    assert [r["state"] for r in runs_of(conn, spawned.task_id)] == ["failed", "cancelled"]


def test_cancel_holding_locks_then_fail(conn, pair):
    a, b = pair
    spawned = spawn(conn, max_attempts=3)
    claim_one(conn)
    with b.transaction():
        cancel(b, spawned.task_id)
        thread, result = in_thread(lambda: fail(a, spawned.run_id))
        wait_until(lambda: blocked_or_done(conn, a, result))
    join(thread, result)
    assert isinstance(result.error, psycopg.Error) and result.error.sqlstate == "AB001", (
        result.error
    )
    assert [r["state"] for r in runs_of(conn, spawned.task_id)] == ["cancelled"]


def test_checkpoint_then_complete_in_one_transaction_while_cancel_arrives(conn, pair):
    # A worker on a caller-managed transaction writes a step and then completes, while an
    # operator cancels the task from another connection.
    a, b = pair
    spawned = spawn(conn)
    claim_one(conn)
    with a.transaction():
        set_checkpoint(a, spawned.task_id, "step", 1, spawned.run_id, extend_by=30)
        thread, result = in_thread(lambda: cancel(b, spawned.task_id))
        wait_until(lambda: blocked_or_done(conn, b, result))
        complete(a, spawned.run_id, "done")
    join(thread, result)
    assert result.error is None, result.error
    assert task_row(conn, spawned.task_id)["state"] == "completed"


def test_cancel_and_complete_racing_many_times(conn, pair):
    a, b = pair
    outcomes = set()
    for i in range(30):
        spawned = spawn(conn, params=i)
        claim_one(conn, timeout=0)
        barrier = threading.Barrier(2)

        def completer(run_id=spawned.run_id, barrier=barrier):
            barrier.wait(5)
            complete(a, run_id, "done")

        def canceller(task_id=spawned.task_id, barrier=barrier):
            barrier.wait(5)
            cancel(b, task_id)

        (tc, rc), (tx, rx) = in_thread(completer), in_thread(canceller)
        join(tc, rc)
        join(tx, rx)
        assert rx.error is None, f"cancel failed: {rx.error!r}"
        task = task_row(conn, spawned.task_id)
        run = run_row(conn, spawned.run_id)
        if rc.error is None:
            assert (task["state"], run["state"]) == ("completed", "completed")
        else:
            assert getattr(rc.error, "sqlstate", None) == "AB001", repr(rc.error)
            assert (task["state"], run["state"]) == ("cancelled", "cancelled")
        outcomes.add(task["state"])
    assert outcomes <= {"completed", "cancelled"}


def test_cancel_and_fail_racing_many_times(conn, pair):
    a, b = pair
    for i in range(20):
        spawned = spawn(conn, params=i, max_attempts=5)
        claim_one(conn, timeout=0)
        barrier = threading.Barrier(2)

        def failer(run_id=spawned.run_id, barrier=barrier):
            barrier.wait(5)
            fail(a, run_id)

        def canceller(task_id=spawned.task_id, barrier=barrier):
            barrier.wait(5)
            cancel(b, task_id)

        (tf, rf), (tx, rx) = in_thread(failer), in_thread(canceller)
        join(tf, rf)
        join(tx, rx)
        assert rx.error is None, f"cancel failed: {rx.error!r}"
        runs = runs_of(conn, spawned.task_id)
        assert task_row(conn, spawned.task_id)["state"] == "cancelled"
        if rf.error is None:
            assert [r["state"] for r in runs] == ["failed", "cancelled"]
        else:
            assert getattr(rf.error, "sqlstate", None) == "AB001", repr(rf.error)
            assert [r["state"] for r in runs] == ["cancelled"]


def test_claim_sweeps_racing_each_other_do_not_deadlock(conn, pair):
    # Both claimers find the same policy violations and expired leases at the same time.
    a, b = pair
    clock = FakeClock(conn, a, b)
    for i in range(8):
        spawn(conn, params=i, cancellation={"max_delay": 5})
    for i in range(4):
        spawn(conn, params=i, cancellation={"max_duration": 1000})
    claim(conn, worker="dead", timeout=5, qty=4)  # leases expire; some may be policy tasks
    clock.advance(10)
    barrier = threading.Barrier(2)

    def worker(c, name):
        barrier.wait(5)
        return [claim(c, worker=name, qty=3) for _ in range(5)]

    (ta, ra), (tb, rb) = in_thread(lambda: worker(a, "a")), in_thread(lambda: worker(b, "b"))
    join(ta, ra)
    join(tb, rb)
    assert ra.error is None and rb.error is None, (ra.error, rb.error)
    states = dict(conn.execute('SELECT state, count(*) FROM absurd."t_jobs" GROUP BY 1').fetchall())
    assert sum(states.values()) == 12
    assert set(states) <= {"cancelled", "running", "pending"}


# --- queue creation ---------------------------------------------------------------------


def test_two_workers_creating_the_same_queue_at_once(conn, pair):
    # Worker processes call create_queue on start-up; several may start together.
    a, b = pair
    for i in range(10):
        name = f"fresh-{i}"
        barrier = threading.Barrier(2)

        def create(c, name=name, barrier=barrier):
            barrier.wait(5)
            c.execute("SELECT absurd.create_queue(%s)", (name,))

        (ta, ra), (tb, rb) = in_thread(lambda: create(a)), in_thread(lambda: create(b))
        join(ta, ra)
        join(tb, rb)
        assert ra.error is None and rb.error is None, (ra.error, rb.error)
        assert spawn(conn, name).created is True
    assert conn.execute("SELECT count(*) FROM absurd.queues").fetchone()[0] == 11


def test_create_queue_waits_for_a_concurrent_uncommitted_create(conn, pair):
    a, b = pair
    with a.transaction():
        a.execute("SELECT absurd.create_queue(%s)", ("late",))
        thread, result = in_thread(lambda: b.execute("SELECT absurd.create_queue(%s)", ("late",)))
        wait_until(lambda: blocked_or_done(conn, b, result))
    join(thread, result)
    assert result.error is None, result.error
    assert spawn(conn, "late").created is True


# --- lease expiry racing a late worker ----------------------------------------------------


def test_late_completion_in_flight_is_not_swept(conn, pair):
    # The worker is completing (its transaction holds the run) when another worker's claim
    # runs the expiry sweep: the sweep skips the locked run instead of waiting or failing it.
    a, b = pair
    clock = FakeClock(conn, a, b)
    spawned = spawn(conn)
    claim_one(a, worker="slow", timeout=10)
    clock.advance(11)
    with a.transaction():
        complete(a, spawned.run_id, "just in time")
        assert claim(b, worker="sweeper") == []
    assert task_row(conn, spawned.task_id)["state"] == "completed"
    assert [r["state"] for r in runs_of(conn, spawned.task_id)] == ["completed"]
    assert claim(b, worker="sweeper") == []


def test_sweep_in_flight_makes_the_late_completion_fail_with_ab002(conn, pair):
    a, b = pair
    clock = FakeClock(conn, a, b)
    spawned = spawn(conn)
    claim_one(a, worker="slow", timeout=10)
    clock.advance(11)
    with b.transaction():
        retry_run = claim_one(b, worker="sweeper")
        thread, result = in_thread(lambda: complete(a, spawned.run_id, "too late"))
        wait_until(lambda: blocked_or_done(conn, a, result))
    join(thread, result)
    assert isinstance(result.error, psycopg.Error) and result.error.sqlstate == "AB002", (
        result.error
    )
    runs = runs_of(conn, spawned.task_id)
    assert [(r["attempt"], r["state"]) for r in runs] == [(1, "failed"), (2, "running")]
    assert runs[1]["run_id"] == retry_run["run_id"]
    assert task_row(conn, spawned.task_id)["completed_payload"] is None


# --- events racing each other and cancel --------------------------------------------------


def test_racing_emits_first_one_wins_for_everyone(conn, pair):
    a, b = pair
    for i in range(20):
        event = f"double-{i}"
        spawned = spawn(conn, params=i)
        run = claim_one(conn, timeout=0)
        await_event(conn, spawned.task_id, run["run_id"], event, step="w")
        barrier = threading.Barrier(2)

        def emitter(c, payload, event=event, barrier=barrier):
            barrier.wait(5)
            emit(c, event, payload)

        (ta, ra), (tb, rb) = (
            in_thread(lambda: emitter(a, "from-a")),
            in_thread(lambda: emitter(b, "from-b")),
        )
        join(ta, ra)
        join(tb, rb)
        assert ra.error is None and rb.error is None, (ra.error, rb.error)
        stored = conn.execute(
            'SELECT payload FROM absurd."e_jobs" WHERE event_name = %s', (event,)
        ).fetchone()[0]
        assert stored in ("from-a", "from-b")
        assert run_row(conn, spawned.run_id)["event_payload"] == stored
        assert checkpoint_rows(conn, spawned.task_id)["w"]["state"] == stored
        cancel(conn, spawned.task_id)  # out of the way of the next iteration's claim


def test_emit_racing_cancel_of_the_waiting_task(conn, pair):
    a, b = pair
    for i in range(20):
        event = f"cancel-race-{i}"
        spawned = spawn(conn, params=i)
        run = claim_one(conn, timeout=0)
        await_event(conn, spawned.task_id, run["run_id"], event, step="w")
        barrier = threading.Barrier(2)

        def emitter(event=event, barrier=barrier, i=i):
            barrier.wait(5)
            emit(a, event, i)

        def canceller(task_id=spawned.task_id, barrier=barrier):
            barrier.wait(5)
            cancel(b, task_id)

        (te, re_), (tc, rc) = in_thread(emitter), in_thread(canceller)
        join(te, re_)
        join(tc, rc)
        assert re_.error is None and rc.error is None, (re_.error, rc.error)
        assert task_row(conn, spawned.task_id)["state"] == "cancelled"
        assert run_row(conn, spawned.run_id)["state"] == "cancelled"
        assert (
            conn.execute(
                'SELECT count(*) FROM absurd."w_jobs" WHERE task_id = %s', (spawned.task_id,)
            ).fetchone()[0]
            == 0
        )


def test_await_racing_cancel(conn, pair):
    a, b = pair
    for i in range(20):
        spawned = spawn(conn, params=i)
        run = claim_one(conn, timeout=0)
        barrier = threading.Barrier(2)

        def waiter(task_id=spawned.task_id, run_id=run["run_id"], barrier=barrier, i=i):
            barrier.wait(5)
            return await_event(a, task_id, run_id, f"never-{i}", step="w")

        def canceller(task_id=spawned.task_id, barrier=barrier):
            barrier.wait(5)
            cancel(b, task_id)

        (tw, rw), (tc, rc) = in_thread(waiter), in_thread(canceller)
        join(tw, rw)
        join(tc, rc)
        assert rc.error is None, rc.error
        if rw.error is not None:
            assert getattr(rw.error, "sqlstate", None) == "AB001", repr(rw.error)
        assert task_row(conn, spawned.task_id)["state"] == "cancelled"
        assert run_row(conn, spawned.run_id)["state"] == "cancelled"
        assert (
            conn.execute(
                'SELECT count(*) FROM absurd."w_jobs" WHERE task_id = %s', (spawned.task_id,)
            ).fetchone()[0]
            == 0
        )
