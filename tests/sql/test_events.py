"""await_event and emit_event: caching, wake-ups, first emit wins, timeouts."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from psycopg import sql

from .helpers import (
    EPOCH,
    INFINITY,
    FakeClock,
    Q,
    await_event,
    cancel,
    checkpoint_rows,
    claim,
    claim_one,
    complete,
    create_queue,
    emit,
    event_row,
    fail,
    get_checkpoint,
    get_checkpoints,
    raises_db,
    run_row,
    spawn,
    table,
    task_row,
    wait_rows,
)


@pytest.fixture
def clock(conn):
    create_queue(conn)
    return FakeClock(conn)


def running_task(conn, **options) -> dict:
    spawned = spawn(conn, **options)
    row = claim_one(conn)
    assert row["run_id"] == spawned.run_id
    return row


def test_await_event_result_columns(conn, clock):
    run = running_task(conn)
    cur = conn.cursor()
    cur.execute(
        "SELECT * FROM absurd.await_event(%s, %s, %s, %s, %s, %s)",
        (Q, run["task_id"], run["run_id"], "s", "e", None),
    )
    names = [c.name for c in cur.description]
    assert names == ["should_suspend", "payload", "timed_out"]


def test_emit_before_await_resolves_at_once_and_checkpoints(conn, clock):
    emit(conn, "ready", {"x": 1})
    run = running_task(conn)
    got = await_event(conn, run["task_id"], run["run_id"], "ready", step="$awaitEvent:ready")
    assert got.should_suspend is False
    assert got.payload == {"x": 1}
    assert got.timed_out is False
    cp = checkpoint_rows(conn, run["task_id"])["$awaitEvent:ready"]
    assert cp["state"] == {"x": 1}
    assert cp["status"] == "committed"
    assert cp["owner_run_id"] == run["run_id"]
    assert run_row(conn, run["run_id"])["state"] == "running"
    assert wait_rows(conn, task_id=run["task_id"]) == []


def test_await_without_timeout_suspends_until_infinity(conn, clock):
    run = running_task(conn)
    got = await_event(conn, run["task_id"], run["run_id"], "go", step="wait-go")
    assert (got.should_suspend, got.payload, got.timed_out) == (True, None, False)

    r = run_row(conn, run["run_id"])
    assert r["state"] == "sleeping"
    assert r["claimed_by"] is None
    assert r["claim_expires_at"] is None
    assert r["wake_event"] == "go"
    assert r["event_payload"] is None
    assert r["available_at"] == INFINITY
    assert conn.execute(
        sql.SQL("SELECT available_at = 'infinity'::timestamptz FROM {} WHERE run_id = %s").format(
            table("r")
        ),
        (run["run_id"],),
    ).fetchone()[0]
    assert task_row(conn, run["task_id"])["state"] == "sleeping"

    waits = wait_rows(conn, run_id=run["run_id"])
    assert len(waits) == 1
    assert waits[0]["step_name"] == "wait-go"
    assert waits[0]["task_id"] == run["task_id"]
    assert waits[0]["event_name"] == "go"
    assert waits[0]["timeout_at"] is None
    assert waits[0]["created_at"] == clock.now

    sentinel = event_row(conn, "go")
    assert sentinel["payload"] is None
    assert sentinel["emitted_at"] == EPOCH

    clock.advance(10 * 365 * 24 * 3600)
    assert claim(conn) == []


def test_await_with_timeout_sets_the_wake_time(conn, clock):
    run = running_task(conn)
    got = await_event(conn, run["task_id"], run["run_id"], "go", step="w", timeout=90)
    assert got.should_suspend is True
    assert run_row(conn, run["run_id"])["available_at"] == clock.now + timedelta(seconds=90)
    assert wait_rows(conn, run_id=run["run_id"])[0]["timeout_at"] == clock.now + timedelta(
        seconds=90
    )


def test_emit_during_await_wakes_the_run_and_checkpoints_the_payload(conn, clock):
    run = running_task(conn)
    await_event(conn, run["task_id"], run["run_id"], "go", step="w", timeout=300)
    clock.advance(5)
    emit(conn, "go", {"ok": True})

    r = run_row(conn, run["run_id"])
    assert r["state"] == "pending"
    assert r["available_at"] == clock.now
    assert r["wake_event"] is None
    assert r["event_payload"] == {"ok": True}
    assert r["claimed_by"] is None and r["claim_expires_at"] is None
    assert task_row(conn, run["task_id"])["state"] == "pending"
    assert wait_rows(conn, task_id=run["task_id"]) == []
    cp = checkpoint_rows(conn, run["task_id"])["w"]
    assert cp["state"] == {"ok": True}
    assert cp["owner_run_id"] == run["run_id"]
    ev = event_row(conn, "go")
    assert ev["payload"] == {"ok": True}
    assert ev["emitted_at"] == clock.now

    again = claim_one(conn)
    assert again["run_id"] == run["run_id"]
    assert again["attempt"] == 1
    assert again["event_payload"] == {"ok": True}
    assert again["wake_event"] is None

    replay = await_event(conn, run["task_id"], run["run_id"], "go", step="w", timeout=300)
    assert (replay.should_suspend, replay.payload, replay.timed_out) == (False, {"ok": True}, False)
    complete(conn, run["run_id"], "done")
    assert task_row(conn, run["task_id"])["state"] == "completed"


def test_await_consumes_the_delivered_payload(conn, clock):
    run = running_task(conn)
    await_event(conn, run["task_id"], run["run_id"], "go", step="w")
    emit(conn, "go", 7)
    claim_one(conn)
    # A fresh step name: the checkpoint cannot answer, so the run's delivered payload does.
    got = await_event(conn, run["task_id"], run["run_id"], "go", step="w-again")
    assert (got.should_suspend, got.payload) == (False, 7)
    assert run_row(conn, run["run_id"])["event_payload"] is None


def test_first_emit_wins(conn, clock):
    emit(conn, "once", {"n": 1})
    first_at = clock.now
    clock.advance(10)
    emit(conn, "once", {"n": 2})
    ev = event_row(conn, "once")
    assert ev["payload"] == {"n": 1}
    assert ev["emitted_at"] == first_at
    run = running_task(conn)
    assert await_event(conn, run["task_id"], run["run_id"], "once").payload == {"n": 1}


def test_second_emit_does_not_disturb_a_woken_run(conn, clock):
    run = running_task(conn)
    await_event(conn, run["task_id"], run["run_id"], "go", step="w")
    emit(conn, "go", "first")
    emit(conn, "go", "second")
    assert run_row(conn, run["run_id"])["event_payload"] == "first"
    assert checkpoint_rows(conn, run["task_id"])["w"]["state"] == "first"


def test_emit_without_payload_stores_json_null(conn, clock):
    conn.execute("SELECT absurd.emit_event(%s, %s)", (Q, "bare"))
    conn.execute("SELECT absurd.emit_event(%s, %s, NULL)", (Q, "bare-null"))
    for name in ("bare", "bare-null"):
        assert conn.execute(
            sql.SQL(
                "SELECT payload IS NOT NULL AND jsonb_typeof(payload) = 'null' FROM {} WHERE event_name = %s"
            ).format(table("e")),
            (name,),
        ).fetchone()[0], name
    run = running_task(conn)
    got = await_event(conn, run["task_id"], run["run_id"], "bare", step="s")
    assert (got.should_suspend, got.payload, got.timed_out) == (False, None, False)
    assert len(get_checkpoint(conn, run["task_id"], "s")) == 1


def test_null_payload_emit_wakes_a_waiter(conn, clock):
    run = running_task(conn)
    await_event(conn, run["task_id"], run["run_id"], "go", step="w")
    emit(conn, "go", None)
    assert run_row(conn, run["run_id"])["state"] == "pending"
    claim_one(conn)
    got = await_event(conn, run["task_id"], run["run_id"], "go", step="w")
    assert (got.should_suspend, got.payload, got.timed_out) == (False, None, False)


def test_two_waiters_on_one_event_both_wake(conn, clock):
    a = spawn(conn, name="a")
    b = spawn(conn, name="b")
    runs = claim(conn, qty=2)
    assert {r["task_id"] for r in runs} == {a.task_id, b.task_id}
    for r in runs:
        assert await_event(conn, r["task_id"], r["run_id"], "broadcast", step="w").should_suspend
    emit(conn, "broadcast", "hello")
    for r in runs:
        assert run_row(conn, r["run_id"])["state"] == "pending"
        assert checkpoint_rows(conn, r["task_id"])["w"]["state"] == "hello"
    reclaimed = claim(conn, qty=5)
    assert {r["run_id"] for r in reclaimed} == {r["run_id"] for r in runs}
    assert {r["event_payload"] for r in reclaimed} == {"hello"}


def test_emit_wakes_only_waiters_of_that_event(conn, clock):
    a = spawn(conn, name="a")
    b = spawn(conn, name="b")
    runs = {r["task_id"]: r for r in claim(conn, qty=2)}
    await_event(conn, a.task_id, runs[a.task_id]["run_id"], "alpha", step="w")
    await_event(conn, b.task_id, runs[b.task_id]["run_id"], "beta", step="w")
    emit(conn, "alpha", 1)
    assert run_row(conn, a.run_id)["state"] == "pending"
    assert run_row(conn, b.run_id)["state"] == "sleeping"
    assert len(wait_rows(conn, task_id=b.task_id)) == 1


def test_events_are_scoped_to_their_queue(conn, clock):
    create_queue(conn, "other")
    emit(conn, "shared-name", "from-other", q="other")
    run = running_task(conn)
    got = await_event(conn, run["task_id"], run["run_id"], "shared-name", step="w")
    assert got.should_suspend is True
    assert event_row(conn, "shared-name", q="other")["payload"] == "from-other"


def test_emit_with_no_waiters_just_records_the_event(conn, clock):
    emit(conn, "lonely", [1, 2])
    assert event_row(conn, "lonely")["payload"] == [1, 2]
    assert event_row(conn, "lonely")["emitted_at"] == clock.now


@pytest.mark.parametrize("name", ["", None])
def test_emit_requires_an_event_name(conn, clock, name):
    with raises_db("P0001", "event_name must be provided"):
        conn.execute("SELECT absurd.emit_event(%s, %s, %s)", (Q, name, "1"))


@pytest.mark.parametrize("name", ["", None])
def test_await_requires_an_event_name(conn, clock, name):
    run = running_task(conn)
    with raises_db("P0001", "event_name must be provided"):
        conn.execute(
            "SELECT * FROM absurd.await_event(%s, %s, %s, %s, %s, %s)",
            (Q, run["task_id"], run["run_id"], "s", name, None),
        )


def test_await_rejects_a_negative_timeout(conn, clock):
    run = running_task(conn)
    with raises_db("P0001", "timeout must be non-negative"):
        await_event(conn, run["task_id"], run["run_id"], "e", step="s", timeout=-1)
    assert run_row(conn, run["run_id"])["state"] == "running"


def test_await_on_an_unknown_run(conn, clock):
    spawned = spawn(conn)
    ghost = uuid.uuid4()
    with raises_db("P0001", f'Run "{ghost}" not found while awaiting event'):
        await_event(conn, spawned.task_id, ghost, "e", step="s")


def test_await_on_a_cancelled_task_is_ab001(conn, clock):
    run = running_task(conn)
    cancel(conn, run["task_id"])
    with raises_db("AB001", "Task has been cancelled"):
        await_event(conn, run["task_id"], run["run_id"], "e", step="s")


def test_await_requires_a_running_run(conn, clock):
    spawned = spawn(conn)
    with raises_db("P0001", f'Run "{spawned.run_id}" must be running to await events'):
        await_event(conn, spawned.task_id, spawned.run_id, "e", step="s")


def test_await_answers_from_an_existing_checkpoint_first(conn, clock):
    run = running_task(conn)
    emit(conn, "e", "payload")
    await_event(conn, run["task_id"], run["run_id"], "e", step="s")
    complete(conn, run["run_id"])
    # Step 1 of the evaluation: the checkpoint answers even though the run is finished.
    got = await_event(conn, run["task_id"], run["run_id"], "e", step="s")
    assert (got.should_suspend, got.payload) == (False, "payload")


def test_cancel_removes_the_wait(conn, clock):
    run = running_task(conn)
    await_event(conn, run["task_id"], run["run_id"], "e", step="s")
    cancel(conn, run["task_id"])
    assert wait_rows(conn, task_id=run["task_id"]) == []
    emit(conn, "e", 1)
    assert run_row(conn, run["run_id"])["state"] == "cancelled"
    assert checkpoint_rows(conn, run["task_id"]) == {}


# --- timeouts -----------------------------------------------------------------------------


def test_timed_out_wait_is_reported_and_recorded_durably(conn, clock):
    run = running_task(conn)
    got = await_event(conn, run["task_id"], run["run_id"], "late", step="w", timeout=10)
    assert got.should_suspend is True
    clock.advance(9)
    assert claim(conn) == []
    clock.advance(1)
    again = claim_one(conn)
    assert again["run_id"] == run["run_id"]
    assert again["wake_event"] == "late"
    assert again["event_payload"] is None
    assert wait_rows(conn, run_id=run["run_id"]) == []
    assert checkpoint_rows(conn, run["task_id"]) == {}, "the claim records nothing"

    first = await_event(
        conn, run["task_id"], run["run_id"], "late", step="w", timeout=10, durable=True
    )
    assert (first.should_suspend, first.payload, first.timed_out) == (False, None, True)
    cp = checkpoint_rows(conn, run["task_id"])["w"]
    assert cp["status"] == "timed_out"
    assert cp["state"] is None
    assert conn.execute(
        sql.SQL("SELECT state IS NULL FROM {} WHERE task_id = %s AND checkpoint_name = 'w'").format(
            table("c")
        ),
        (run["task_id"],),
    ).fetchone()[0]
    assert cp["owner_run_id"] == run["run_id"]
    assert run_row(conn, run["run_id"])["state"] == "running"
    assert wait_rows(conn, run_id=run["run_id"]) == []

    second = await_event(
        conn, run["task_id"], run["run_id"], "late", step="w", timeout=10, durable=True
    )
    assert (second.should_suspend, second.payload, second.timed_out) == (False, None, True)
    assert run_row(conn, run["run_id"])["state"] == "running"


def test_a_timed_out_wait_as_the_official_sdks_see_it(conn, clock):
    # Upstream 0.5.1, exactly: the timeout is reported once (wake_event), nothing records
    # it, and awaiting again waits afresh.
    run = running_task(conn)
    await_event(conn, run["task_id"], run["run_id"], "late", step="w", timeout=10)
    clock.advance(10)
    claim_one(conn)
    first = await_event(conn, run["task_id"], run["run_id"], "late", step="w", timeout=10)
    assert (first.should_suspend, first.payload, first.timed_out) == (False, None, True)
    assert checkpoint_rows(conn, run["task_id"]) == {}
    assert run_row(conn, run["run_id"])["wake_event"] is None
    second = await_event(conn, run["task_id"], run["run_id"], "late", step="w", timeout=10)
    assert second.should_suspend is True
    assert [w["step_name"] for w in wait_rows(conn, run_id=run["run_id"])] == ["w"]


def test_timed_out_wait_stays_timed_out_after_a_late_emit_and_on_replay(conn, clock):
    run = running_task(conn, max_attempts=3)
    await_event(conn, run["task_id"], run["run_id"], "late", step="w", timeout=10)
    clock.advance(10)
    claim_one(conn)
    assert await_event(
        conn, run["task_id"], run["run_id"], "late", step="w", timeout=10, durable=True
    ).timed_out
    emit(conn, "late", "too late")
    # A replay by the next attempt takes the same path (upstream issues #96 and #138).
    fail(conn, run["run_id"])
    retry_run = claim_one(conn)
    assert retry_run["attempt"] == 2
    replay = await_event(
        conn, run["task_id"], retry_run["run_id"], "late", step="w", timeout=10, durable=True
    )
    assert (replay.should_suspend, replay.payload, replay.timed_out) == (False, None, True)


def test_an_official_replay_does_not_see_the_durable_record(conn, clock):
    # A task our SDK began and the official SDK replays: it gets what upstream would give
    # it (no record, so the event as it stands), not a timeout it cannot read.
    run = running_task(conn, max_attempts=3)
    await_event(conn, run["task_id"], run["run_id"], "late", step="w", timeout=10)
    clock.advance(10)
    claim_one(conn)
    await_event(conn, run["task_id"], run["run_id"], "late", step="w", timeout=10, durable=True)
    fail(conn, run["run_id"])
    retry_run = claim_one(conn)
    replay = await_event(conn, run["task_id"], retry_run["run_id"], "late", step="w", timeout=10)
    assert (replay.should_suspend, replay.payload, replay.timed_out) == (True, None, False)
    emit(conn, "late", "finally")
    claim_one(conn)
    got = await_event(conn, run["task_id"], retry_run["run_id"], "late", step="w", timeout=10)
    assert (got.should_suspend, got.payload) == (False, "finally")
    assert checkpoint_rows(conn, run["task_id"])["w"]["status"] == "committed"


def test_timed_out_checkpoint_is_not_a_committed_value(conn, clock):
    run = running_task(conn)
    await_event(conn, run["task_id"], run["run_id"], "late", step="w", timeout=1)
    clock.advance(1)
    claim_one(conn)
    await_event(conn, run["task_id"], run["run_id"], "late", step="w", timeout=1, durable=True)
    assert checkpoint_rows(conn, run["task_id"])["w"]["status"] == "timed_out"
    # Readers filter on status = 'committed'; the SDK's cache must not see a value.
    assert get_checkpoint(conn, run["task_id"], "w") == []
    assert [
        r["checkpoint_name"] for r in get_checkpoints(conn, run["task_id"], run["run_id"])
    ] == []


@pytest.mark.parametrize("durable", [True, False])
def test_emit_after_the_timeout_passed_does_not_wake_the_run(conn, clock, durable):
    run = running_task(conn)
    await_event(conn, run["task_id"], run["run_id"], "late", step="w", timeout=10)
    clock.advance(11)
    emit(conn, "late", "too late")
    # The expired wait row is removed instead of delivering to it.
    assert wait_rows(conn, run_id=run["run_id"]) == []
    r = run_row(conn, run["run_id"])
    assert r["state"] == "sleeping"
    assert r["event_payload"] is None
    assert get_checkpoint(conn, run["task_id"], "w") == []
    # The run wakes on its timer and sees a timeout in the claimed row (which is all the
    # official SDKs look at); a durable caller gets the timeout from await_event as well.
    again = claim_one(conn)
    assert (again["wake_event"], again["event_payload"]) == ("late", None)
    if durable:
        got = await_event(
            conn, run["task_id"], run["run_id"], "late", step="w", timeout=10, durable=True
        )
        assert (got.should_suspend, got.payload, got.timed_out) == (False, None, True)


def test_a_new_wait_after_a_timeout_does_not_inherit_it_for_our_sdk(conn, clock):
    # Upstream #138: after a timed-out wait, awaiting the same event under the next step
    # name must wait afresh, not report the old timeout.
    run = running_task(conn)
    await_event(conn, run["task_id"], run["run_id"], "tick", step="$awaitEvent:tick", timeout=5)
    clock.advance(5)
    assert claim_one(conn)["wake_event"] == "tick"
    first = await_event(
        conn,
        run["task_id"],
        run["run_id"],
        "tick",
        step="$awaitEvent:tick",
        timeout=5,
        durable=True,
    )
    assert first.timed_out is True
    second = await_event(
        conn,
        run["task_id"],
        run["run_id"],
        "tick",
        step="$awaitEvent:tick#2",
        timeout=5,
        durable=True,
    )
    assert (second.should_suspend, second.timed_out) == (True, False)
    emit(conn, "tick", "now")
    claim_one(conn)
    third = await_event(
        conn,
        run["task_id"],
        run["run_id"],
        "tick",
        step="$awaitEvent:tick#2",
        timeout=5,
        durable=True,
    )
    assert (third.should_suspend, third.payload, third.timed_out) == (False, "now", False)


def test_a_second_wait_after_a_timeout_as_upstream_answers_it(conn, clock):
    # SDK 0.5.1 notices the timeout from the claimed row without calling await_event for
    # the timed-out step; its next await of the same event gets what upstream 0.5.1 gives
    # (no payload, no wait registered), so the task completes with no wait left.
    run = running_task(conn)
    await_event(conn, run["task_id"], run["run_id"], "tick", step="$awaitEvent:tick", timeout=5)
    clock.advance(5)
    assert claim_one(conn)["wake_event"] == "tick"
    second = await_event(
        conn, run["task_id"], run["run_id"], "tick", step="$awaitEvent:tick#2", timeout=5
    )
    assert (second.should_suspend, second.payload) == (False, None)
    assert wait_rows(conn, run_id=run["run_id"]) == []
    complete(conn, run["run_id"])
    assert wait_rows(conn) == []


def test_timeout_of_zero_is_due_immediately(conn, clock):
    run = running_task(conn)
    got = await_event(conn, run["task_id"], run["run_id"], "now", step="w", timeout=0)
    assert got.should_suspend is True
    assert run_row(conn, run["run_id"])["available_at"] == clock.now
    again = claim_one(conn)
    assert again["wake_event"] == "now"
    assert await_event(conn, run["task_id"], run["run_id"], "now", step="w", timeout=0).timed_out


def test_emit_before_timeout_wins_over_the_timeout(conn, clock):
    run = running_task(conn)
    await_event(conn, run["task_id"], run["run_id"], "e", step="w", timeout=10)
    clock.advance(9)
    emit(conn, "e", "in time")
    clock.advance(5)
    again = claim_one(conn)
    assert again["event_payload"] == "in time"
    got = await_event(conn, run["task_id"], run["run_id"], "e", step="w", timeout=10)
    assert (got.payload, got.timed_out) == ("in time", False)


def test_wait_can_be_resumed_with_a_new_step_after_failure(conn, clock):
    run = running_task(conn, max_attempts=2)
    await_event(conn, run["task_id"], run["run_id"], "e", step="w")
    fail(conn, run["run_id"])
    assert wait_rows(conn, task_id=run["task_id"]) == []
    retry_run = claim_one(conn)
    assert await_event(conn, run["task_id"], retry_run["run_id"], "e", step="w").should_suspend
    emit(conn, "e", "x")
    assert run_row(conn, retry_run["run_id"])["state"] == "pending"
    assert run_row(conn, run["run_id"])["state"] == "failed"


@pytest.mark.parametrize("durable", [True, False])
def test_an_event_emitted_before_the_wait_resolves_it_for_every_caller(conn, clock, durable):
    run = running_task(conn)
    emit(conn, "early", {"n": 1})
    got = await_event(conn, run["task_id"], run["run_id"], "early", step="w", durable=durable)
    assert (got.should_suspend, got.payload, got.timed_out) == (False, {"n": 1}, False)
