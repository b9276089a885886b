"""The official Python SDK (absurd-sdk 0.5.1, a client we did not write) drives our engine.

Time is driven the way upstream's own SDK tests drive it: `absurd.fake_now` on the worker's
session for the database, and the SDK's `_get_current_time` patched to the same instant.
"""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta

import absurd_sdk
import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row

Q = "interop"
T0 = datetime(2031, 3, 4, 12, 0, 0, tzinfo=UTC)


class Clock:
    """One fake instant shared by the database session(s) and the SDK's Python clock."""

    def __init__(self, monkeypatch, *conns: psycopg.Connection):
        self.now = T0
        self.conns = list(conns)
        monkeypatch.setattr(absurd_sdk, "_get_current_time", lambda: self.now)
        self._apply()

    def attach(self, conn: psycopg.Connection) -> psycopg.Connection:
        self.conns.append(conn)
        self._apply()
        return conn

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        self._apply()

    def _apply(self) -> None:
        for conn in self.conns:
            conn.execute("SELECT set_config('absurd.fake_now', %s, false)", (self.now.isoformat(),))


@pytest.fixture
def worker_conn(connect):
    return connect()


@pytest.fixture
def clock(monkeypatch, worker_conn):
    return Clock(monkeypatch, worker_conn)


@pytest.fixture
def app(worker_conn, clock):
    client = absurd_sdk.Absurd(worker_conn, queue_name=Q)
    client.create_queue()
    yield client
    client.close()


def work(app, rounds: int = 1) -> None:
    for _ in range(rounds):
        app.work_batch(worker_id="interop-worker", claim_timeout=60, batch_size=5)


def result(app, task_id):
    return app.fetch_task_result(task_id)


def rows(conn, prefix: str, where: str, *params) -> list[dict]:
    query = sql.SQL("SELECT * FROM absurd.{} WHERE " + where).format(
        sql.Identifier(f"{prefix}_{Q}")
    )
    return conn.cursor(row_factory=dict_row).execute(query, params).fetchall()


def runs(conn, task_id) -> list[dict]:
    return sorted(rows(conn, "r", "task_id = %s", task_id), key=lambda r: r["attempt"])


def task_state(conn, task_id) -> str:
    return rows(conn, "t", "task_id = %s", task_id)[0]["state"]


# --- steps --------------------------------------------------------------------------------


def test_steps_run_once_and_the_result_is_stored(app, worker_conn):
    calls = []

    @app.register_task("steps")
    def steps(params, ctx):
        a = ctx.step("add", lambda: calls.append("first") or params["x"] + 1)
        b = ctx.step("add", lambda: calls.append("second") or a * 10)

        @ctx.run_step("decorated")
        def c():
            calls.append("third")
            return [a, b]

        return {"a": a, "b": b, "c": c, "headers": dict(ctx.headers), "task_id": str(ctx.task_id)}

    spawned = app.spawn("steps", {"x": 1}, headers={"trace": "t-1"})
    assert spawned["attempt"] == 1
    work(app)
    snapshot = result(app, spawned["task_id"])
    assert snapshot.state == "completed"
    assert snapshot.result == {
        "a": 2,
        "b": 20,
        "c": [2, 20],
        "headers": {"trace": "t-1"},
        "task_id": str(spawned["task_id"]),
    }
    assert calls == ["first", "second", "third"]
    names = {
        r["checkpoint_name"]: r["state"]
        for r in rows(worker_conn, "c", "task_id = %s", spawned["task_id"])
    }
    assert names == {"add": 2, "add#2": 20, "decorated": [2, 20]}
    assert [r["state"] for r in runs(worker_conn, spawned["task_id"])] == ["completed"]


def test_spawn_defaults_and_idempotency(app, worker_conn):
    @app.register_task("noop")
    def noop(params, ctx):
        return params

    first = app.spawn("noop", {"n": 1}, idempotency_key="once")
    second = app.spawn("noop", {"n": 2}, idempotency_key="once")
    assert first["task_id"] == second["task_id"]
    task = rows(worker_conn, "t", "task_id = %s", first["task_id"])[0]
    assert task["max_attempts"] == 5  # the SDK always sends its default
    assert task["params"] == {"n": 1}
    work(app)
    assert result(app, first["task_id"]).result == {"n": 1}


# --- sleep --------------------------------------------------------------------------------


def test_sleep_for_suspends_until_the_wake_time(app, worker_conn, clock):
    calls = []

    @app.register_task("napper")
    def napper(params, ctx):
        ctx.step("before", lambda: calls.append("before") or 1)
        ctx.sleep_for("nap", 3600)
        ctx.step("after", lambda: calls.append("after") or 2)
        return "rested"

    spawned = app.spawn("napper", None)
    work(app)
    assert task_state(worker_conn, spawned["task_id"]) == "sleeping"
    (run,) = runs(worker_conn, spawned["task_id"])
    assert run["state"] == "sleeping"
    assert run["available_at"] == T0 + timedelta(hours=1)
    nap = rows(worker_conn, "c", "task_id = %s AND checkpoint_name = 'nap'", spawned["task_id"])[0]
    assert datetime.fromisoformat(nap["state"]) == T0 + timedelta(hours=1)

    clock.advance(3599)
    work(app)
    assert task_state(worker_conn, spawned["task_id"]) == "sleeping"

    clock.advance(1)
    work(app)
    snapshot = result(app, spawned["task_id"])
    assert snapshot.state == "completed" and snapshot.result == "rested"
    assert calls == ["before", "after"]
    (run,) = runs(worker_conn, spawned["task_id"])
    assert run["attempt"] == 1


# --- events -------------------------------------------------------------------------------


def test_event_wait_is_woken_by_emit(app, worker_conn):
    @app.register_task("waiter")
    def waiter(params, ctx):
        first = ctx.await_event("approved")
        again = ctx.await_event("approved")  # a second step: "$awaitEvent:approved#2"
        return {"first": first, "again": again}

    spawned = app.spawn("waiter", {})
    work(app)
    assert task_state(worker_conn, spawned["task_id"]) == "sleeping"
    assert rows(worker_conn, "w", "task_id = %s", spawned["task_id"])[0]["event_name"] == "approved"

    work(app)  # nothing to do while it waits
    assert task_state(worker_conn, spawned["task_id"]) == "sleeping"

    app.emit_event("approved", {"by": "ops"})
    assert task_state(worker_conn, spawned["task_id"]) == "pending"
    work(app)
    snapshot = result(app, spawned["task_id"])
    assert snapshot.state == "completed"
    assert snapshot.result == {"first": {"by": "ops"}, "again": {"by": "ops"}}
    checkpoints = {
        r["checkpoint_name"] for r in rows(worker_conn, "c", "task_id = %s", spawned["task_id"])
    }
    assert checkpoints == {"$awaitEvent:approved", "$awaitEvent:approved#2"}


def test_event_emitted_before_the_wait_is_returned_at_once(app):
    @app.register_task("late-waiter")
    def late_waiter(params, ctx):
        return ctx.await_event("ready", step_name="wait-ready")

    app.emit_event("ready", [1, 2, 3])
    spawned = app.spawn("late-waiter", {})
    work(app)
    assert result(app, spawned["task_id"]).result == [1, 2, 3]


def test_one_task_emits_what_another_awaits(app, worker_conn):
    @app.register_task("consumer")
    def consumer(params, ctx):
        return ctx.await_event(f"order:{params['id']}")

    @app.register_task("producer")
    def producer(params, ctx):
        ctx.emit_event(f"order:{params['id']}", {"paid": True})
        return "sent"

    waiting = app.spawn("consumer", {"id": 7})
    work(app)
    assert task_state(worker_conn, waiting["task_id"]) == "sleeping"
    app.spawn("producer", {"id": 7})
    work(app, rounds=3)
    assert result(app, waiting["task_id"]).result == {"paid": True}


def test_event_wait_times_out(app, worker_conn, clock):
    @app.register_task("impatient")
    def impatient(params, ctx):
        try:
            return {"payload": ctx.await_event("never", timeout=10)}
        except absurd_sdk.TimeoutError:
            return {"timed_out": True}

    spawned = app.spawn("impatient", {})
    work(app)
    (run,) = runs(worker_conn, spawned["task_id"])
    assert run["state"] == "sleeping"
    assert run["available_at"] == T0 + timedelta(seconds=10)
    clock.advance(10)
    work(app)
    snapshot = result(app, spawned["task_id"])
    assert snapshot.state == "completed"
    assert snapshot.result == {"timed_out": True}
    assert rows(worker_conn, "w", "task_id = %s", spawned["task_id"]) == []


def test_replay_of_a_timed_out_await_event_waits_again(app, worker_conn, clock):
    # Upstream records no timeout, so a replay (here: the retry after a later failure)
    # waits again and times out again; it never returns a phantom None.
    seen = []

    @app.register_task("replayer")
    def replayer(params, ctx):
        seen.append("start")
        try:
            ctx.await_event("never", timeout=10)
            outcome = "payload"
        except absurd_sdk.TimeoutError:
            outcome = "timeout"
        seen.append(outcome)
        if seen.count("timeout") == 1:
            raise RuntimeError("fails after the timeout")
        return outcome

    spawned = app.spawn("replayer", {}, max_attempts=2)
    work(app)
    clock.advance(10)
    work(app)  # times out, then fails: attempt 2 is pending
    assert [r["state"] for r in runs(worker_conn, spawned["task_id"])] == ["failed", "pending"]
    work(app)  # the replay waits again
    assert task_state(worker_conn, spawned["task_id"]) == "sleeping"
    assert len(rows(worker_conn, "w", "task_id = %s", spawned["task_id"])) == 1
    clock.advance(10)
    work(app)
    assert result(app, spawned["task_id"]).result == "timeout"
    assert seen == ["start", "start", "timeout", "start", "start", "timeout"]
    assert rows(worker_conn, "c", "task_id = %s", spawned["task_id"]) == []
    assert rows(worker_conn, "w", "task_id = %s", spawned["task_id"]) == []


def test_awaiting_the_same_event_after_a_timeout_leaves_no_wait(app, worker_conn, clock):
    @app.register_task("twice")
    def twice(params, ctx):
        try:
            first = ctx.await_event("tick", timeout=10)
        except absurd_sdk.TimeoutError:
            first = "timeout"
        second = ctx.await_event("tick", timeout=10)
        return {"first": first, "second": second}

    spawned = app.spawn("twice", {})
    work(app)
    clock.advance(10)
    work(app)
    snapshot = result(app, spawned["task_id"])
    assert snapshot.state == "completed"
    assert snapshot.result == {"first": "timeout", "second": None}
    assert rows(worker_conn, "w", "true") == []
    assert rows(worker_conn, "c", "task_id = %s", spawned["task_id"]) == []


def test_an_emit_after_the_timeout_is_not_delivered(app, worker_conn, clock):
    @app.register_task("late")
    def late(params, ctx):
        try:
            return {"payload": ctx.await_event("slow", timeout=10)}
        except absurd_sdk.TimeoutError:
            return {"timed_out": True}

    spawned = app.spawn("late", {})
    work(app)
    clock.advance(11)
    app.emit_event("slow", "too late")
    assert task_state(worker_conn, spawned["task_id"]) == "sleeping"
    work(app)
    assert result(app, spawned["task_id"]).result == {"timed_out": True}
    assert rows(worker_conn, "w", "true") == []


# --- failure and retry --------------------------------------------------------------------


def test_a_failure_is_retried_and_the_retry_succeeds(app, worker_conn):
    prepared = []
    failures = []

    @app.register_task("flaky")
    def flaky(params, ctx):
        ctx.step("prepare", lambda: prepared.append(1) or "ready")
        if not failures:
            failures.append(1)
            raise RuntimeError("first try fails")
        return "second try works"

    spawned = app.spawn("flaky", {}, max_attempts=3)
    work(app)
    first, second = runs(worker_conn, spawned["task_id"])
    assert first["state"] == "failed"
    assert first["failure_reason"]["name"] == "RuntimeError"
    assert first["failure_reason"]["message"] == "first try fails"
    assert "Traceback" in first["failure_reason"]["traceback"]
    assert second["state"] == "pending"

    work(app)
    snapshot = result(app, spawned["task_id"])
    assert snapshot.state == "completed" and snapshot.result == "second try works"
    assert prepared == [1]  # the step's checkpoint carried over to attempt 2
    assert [r["state"] for r in runs(worker_conn, spawned["task_id"])] == ["failed", "completed"]


def test_retry_strategy_delays_the_next_attempt(app, worker_conn, clock):
    attempts = []

    @app.register_task("backoff")
    def backoff(params, ctx):
        attempts.append(1)
        if len(attempts) == 1:
            raise ValueError("not yet")
        return len(attempts)

    spawned = app.spawn("backoff", {}, retry_strategy={"kind": "fixed", "base_seconds": 60})
    work(app)
    assert task_state(worker_conn, spawned["task_id"]) == "sleeping"
    clock.advance(59)
    work(app)
    assert len(attempts) == 1
    clock.advance(1)
    work(app)
    assert result(app, spawned["task_id"]).result == 2


def test_exhausted_task_fails_and_retry_task_revives_it(app, worker_conn):
    healthy = []

    @app.register_task("broken")
    def broken(params, ctx):
        if not healthy:
            raise KeyError("missing")
        return "fixed"

    spawned = app.spawn("broken", {}, max_attempts=2)
    work(app, rounds=3)
    snapshot = result(app, spawned["task_id"])
    assert snapshot.state == "failed"
    assert snapshot.failure["name"] == "KeyError"

    healthy.append(True)
    revived = app.retry_task(spawned["task_id"], max_attempts=3)
    assert revived["task_id"] == spawned["task_id"]
    assert revived["attempt"] == 3
    assert revived["created"] is False
    work(app)
    assert result(app, spawned["task_id"]).result == "fixed"


def test_retry_task_spawn_new(app):
    @app.register_task("once-broken")
    def once_broken(params, ctx):
        if params.get("fail"):
            raise RuntimeError("no")
        return "ok"

    spawned = app.spawn("once-broken", {"fail": True}, max_attempts=1)
    work(app)
    assert result(app, spawned["task_id"]).state == "failed"
    fresh = app.retry_task(spawned["task_id"], spawn_new=True)
    assert fresh["created"] is True
    assert fresh["task_id"] != spawned["task_id"]
    assert fresh["attempt"] == 1


# --- cancellation -------------------------------------------------------------------------


def test_cancel_before_it_runs(app, worker_conn):
    ran = []

    @app.register_task("never-runs")
    def never_runs(params, ctx):
        ran.append(1)

    spawned = app.spawn("never-runs", {})
    app.cancel_task(spawned["task_id"])
    work(app)
    assert ran == []
    snapshot = result(app, spawned["task_id"])
    assert snapshot.state == "cancelled"
    assert snapshot.result is None and snapshot.failure is None


def test_cancel_while_running_stops_at_the_next_checkpoint(app, worker_conn, connect):
    operator = absurd_sdk.Absurd(connect(), queue_name=Q)
    reached = []

    @app.register_task("long")
    def long_task(params, ctx):
        ctx.step("one", lambda: reached.append("one") or 1)
        operator.cancel_task(ctx.task_id)
        ctx.step("two", lambda: reached.append("two") or 2)
        reached.append("after two")
        return "should not complete"

    spawned = app.spawn("long", {})
    work(app)
    assert reached == ["one", "two"]
    assert result(app, spawned["task_id"]).state == "cancelled"
    names = {
        r["checkpoint_name"] for r in rows(worker_conn, "c", "task_id = %s", spawned["task_id"])
    }
    assert names == {"one"}
    assert [r["state"] for r in runs(worker_conn, spawned["task_id"])] == ["cancelled"]


def test_cancel_while_sleeping(app, worker_conn, clock):
    woke = []

    @app.register_task("sleeper")
    def sleeper(params, ctx):
        ctx.sleep_for("nap", 60)
        woke.append(1)

    spawned = app.spawn("sleeper", {})
    work(app)
    app.cancel_task(spawned["task_id"])
    clock.advance(120)
    work(app)
    assert woke == []
    assert result(app, spawned["task_id"]).state == "cancelled"


def test_heartbeat_after_cancel_raises_cancelled(app, connect):
    operator = absurd_sdk.Absurd(connect(), queue_name=Q)
    seen = []

    @app.register_task("heartbeating")
    def heartbeating(params, ctx):
        ctx.heartbeat(30)
        seen.append("first beat")
        operator.cancel_task(ctx.task_id)
        try:
            ctx.heartbeat(30)
        except absurd_sdk.CancelledTask:
            seen.append("cancelled")
            raise

    spawned = app.spawn("heartbeating", {})
    work(app)
    assert seen == ["first beat", "cancelled"]
    assert result(app, spawned["task_id"]).state == "cancelled"


def test_cancellation_policy_max_duration(app, worker_conn, clock):
    @app.register_task("bounded", default_cancellation={"max_duration": 100})
    def bounded(params, ctx):
        ctx.sleep_for("long nap", 500)
        return "too late"

    spawned = app.spawn("bounded", {})
    work(app)
    clock.advance(500)
    work(app)
    assert result(app, spawned["task_id"]).state == "cancelled"


# --- odds and ends ------------------------------------------------------------------------


def test_unknown_task_is_deferred_not_failed(app, worker_conn):
    spawned = app.spawn("nobody-knows", {"x": 1}, queue=Q)
    work(app)
    (run,) = runs(worker_conn, spawned["task_id"])
    assert run["state"] == "sleeping"
    assert run["attempt"] == 1
    assert T0 + timedelta(seconds=15) <= run["available_at"] <= T0 + timedelta(seconds=30)
    assert task_state(worker_conn, spawned["task_id"]) == "sleeping"


def test_queue_management(app, worker_conn):
    app.create_queue()  # idempotent
    app.create_queue("second", cleanup_ttl="7 days", cleanup_limit=50)
    assert app.list_queues() == [Q, "second"]
    policy = app.get_queue_policy("second")
    assert policy["storage_mode"] == "unpartitioned"
    assert policy["cleanup_ttl"] == timedelta(days=7)
    assert policy["cleanup_limit"] == 50
    app.set_queue_policy("second", detach_mode="empty")
    assert app.get_queue_policy("second")["detach_mode"] == "empty"
    assert app.get_queue_policy("nope") is None
    app.drop_queue("second")
    assert app.list_queues() == [Q]


def test_a_partitioned_queue(worker_conn, clock):
    parts = absurd_sdk.Absurd(worker_conn, queue_name="parts")
    parts.create_queue(storage_mode="partitioned", partition_lookahead="14 days")
    policy = parts.get_queue_policy()
    assert (policy["storage_mode"], policy["partition_lookahead"]) == (
        "partitioned",
        timedelta(days=14),
    )

    @parts.register_task("double")
    def double(params, ctx):
        return ctx.step("double", lambda: params * 2)

    first = parts.spawn("double", 21, idempotency_key="once")
    again = parts.spawn("double", 99, idempotency_key="once")
    assert again["task_id"] == first["task_id"]
    parts.work_batch(worker_id="parts-worker", claim_timeout=60, batch_size=5)
    assert parts.fetch_task_result(first["task_id"]).result == 42
    keys = worker_conn.execute("SELECT idempotency_key FROM absurd.i_parts").fetchall()
    assert keys == [("once",)]
    parts.drop_queue()
    assert "parts" not in parts.list_queues()


def test_worker_thread_runs_tasks_until_stopped(db_dsn, connect):
    # Real time and the SDK's own polling loop, with a client connection built from a URL.
    worker = absurd_sdk.Absurd(db_dsn, queue_name=Q)
    client = absurd_sdk.Absurd(connect(), queue_name=Q)
    client.create_queue()

    @worker.register_task("double")
    def double(params, ctx):
        return ctx.step("double", lambda: params * 2)

    client.register_task("double")(double)
    ids = [client.spawn("double", n)["task_id"] for n in range(3)]
    thread = threading.Thread(
        target=worker.start_worker,
        kwargs={"worker_id": "thread-worker", "claim_timeout": 30, "poll_interval": 0.05},
        daemon=True,
    )
    thread.start()
    try:
        results = [client.await_task_result(task_id, timeout=15) for task_id in ids]
    finally:
        worker.stop_worker()
        thread.join(10)
    assert not thread.is_alive()
    assert [r.state for r in results] == ["completed"] * 3
    assert [r.result for r in results] == [0, 2, 4]
    worker.close()


def test_async_client_runs_a_task(db_dsn, connect):
    setup = absurd_sdk.Absurd(connect(), queue_name=Q)
    setup.create_queue()

    async def scenario():
        app = absurd_sdk.AsyncAbsurd(db_dsn, queue_name=Q)

        @app.register_task("async-steps")
        async def handler(params, ctx):
            async def compute():
                return params["n"] + 1

            value = await ctx.step("compute", compute)
            payload = await ctx.await_event("go")
            return {"value": value, "payload": payload}

        spawned = await app.spawn("async-steps", {"n": 41})
        await app.work_batch()
        await app.emit_event("go", "now")
        await app.work_batch()
        snapshot = await app.fetch_task_result(spawned["task_id"])
        await app.close()
        return snapshot

    snapshot = asyncio.run(scenario())
    assert snapshot.state == "completed"
    assert snapshot.result == {"value": 42, "payload": "now"}


def test_a_task_awaits_a_child_task_on_another_queue(app, worker_conn, clock, connect):
    # TaskContext.await_task_result polls the child's result inside a step; the child runs
    # on its own queue, served by a second worker thread on its own connection.
    children = absurd_sdk.Absurd(clock.attach(connect()), queue_name="children")
    children.create_queue()

    @children.register_task("child")
    def child(params, ctx):
        return {"square": params["n"] ** 2}

    @app.register_task("parent")
    def parent(params, ctx):
        child_id = ctx.step(
            "spawn child",
            lambda: str(app.spawn("child", {"n": params["n"]}, queue="children")["task_id"]),
        )
        snapshot = ctx.await_task_result(child_id, queue_name="children", timeout=15)
        return {"child_state": snapshot.state, "child_result": snapshot.result}

    thread = threading.Thread(
        target=children.start_worker,
        kwargs={"worker_id": "child-worker", "claim_timeout": 30, "poll_interval": 0.05},
        daemon=True,
    )
    thread.start()
    try:
        spawned = app.spawn("parent", {"n": 7})
        work(app)
    finally:
        children.stop_worker()
        thread.join(10)
        children.close()
    assert result(app, spawned["task_id"]).result == {
        "child_state": "completed",
        "child_result": {"square": 49},
    }
    steps = {
        r["checkpoint_name"] for r in rows(worker_conn, "c", "task_id = %s", spawned["task_id"])
    }
    assert "spawn child" in steps
    assert any(name.startswith("$awaitTaskResult:") for name in steps)
