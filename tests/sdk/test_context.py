"""Task context operations, executed with ``work_batch`` on the test's connection so the
engine clock can be driven with ``absurd.fake_now``."""

from __future__ import annotations

import json
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from absurd_tui.sdk import (
    Absurd,
    CancelledTask,
    TimeoutError,
    get_current_context,
)
from absurd_tui.sdk.context import SchemaFeatures, detect_features
from absurd_tui.sdk.execution import Outcome

from .helpers import checkpoints, run_rows, set_now, task_row

T0 = datetime(2031, 3, 4, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def clock(conn):
    def move(when: datetime) -> None:
        set_now(conn, when)

    move(T0)
    return move


def outcomes(client: Absurd) -> list[Outcome]:
    return [r.outcome for r in client.work_batch()]


def test_a_step_runs_once_and_replays_its_stored_json(client, conn, clock):
    calls = Counter()
    first_values = []

    @client.register_task("steps")
    def steps(params, ctx):
        a = ctx.step("a", lambda: calls.update(["a"]) or {"n": 1, "pair": (1, 2)})
        first_values.append(a)
        ctx.sleep_for("nap", 60)
        b = ctx.step("b", lambda: calls.update(["b"]) or a["n"] + 1)
        return {"a": a, "b": b}

    spawned = client.spawn("steps", {})
    assert outcomes(client) == [Outcome.SUSPENDED]
    assert calls == {"a": 1}
    # The first execution already sees what a replay will see (a list, not the tuple).
    assert first_values == [{"n": 1, "pair": [1, 2]}]
    clock(T0 + timedelta(seconds=61))
    assert outcomes(client) == [Outcome.COMPLETED]
    assert calls == {"a": 1, "b": 1}
    assert first_values[1] == {"n": 1, "pair": [1, 2]}
    assert client.fetch_task_result(spawned.task_id).result == {
        "a": {"n": 1, "pair": [1, 2]},
        "b": 2,
    }


def test_repeated_names_are_numbered_and_stable_across_retries(client, conn, clock):
    calls = []

    @client.register_task("loop", default_max_attempts=2)
    def loop(params, ctx):
        for i in range(3):
            ctx.step("iteration", lambda i=i: calls.append((ctx.attempt, i)) or i * 10)
        if ctx.attempt == 1:
            raise RuntimeError("crash after the loop")
        return "done"

    spawned = client.spawn("loop", {}, retry_strategy={"kind": "none"})
    assert outcomes(client) == [Outcome.FAILED]
    assert outcomes(client) == [Outcome.COMPLETED]
    assert calls == [(1, 0), (1, 1), (1, 2)]
    assert checkpoints(conn, "default", spawned.task_id) == {
        "iteration": 0,
        "iteration#2": 10,
        "iteration#3": 20,
    }
    assert [r["attempt"] for r in run_rows(conn, "default", spawned.task_id)] == [1, 2]


def test_steps_sleeps_waits_and_begin_step_share_one_counter(client, conn, clock):
    @client.register_task("shared")
    def shared(params, ctx):
        ctx.step("x", lambda: 1)
        ctx.sleep_until("x", T0 - timedelta(days=1))  # in the past: no suspension
        ctx.begin_step("x")  # consumes x#3 although never completed
        handle = ctx.begin_step("x")
        ctx.complete_step(handle, None)
        ctx.emit_event("evt", "p")
        ctx.await_event("evt", step_name="x")
        return ctx.current_step

    spawned = client.spawn("shared", {})
    assert outcomes(client) == [Outcome.COMPLETED]
    stored = checkpoints(conn, "default", spawned.task_id)
    assert set(stored) == {"x", "x#2", "x#4", "x#5"}
    assert stored["x#4"] is None and stored["x#5"] == "p"
    assert client.fetch_task_result(spawned.task_id).result == "x#5"


def test_a_cached_null_counts_as_done(client, conn, clock):
    calls = Counter()

    @client.register_task("nulls")
    def nulls(params, ctx):
        first = ctx.step("maybe", lambda: calls.update(["maybe"]) or None)
        handle = ctx.begin_step("manual")
        if not handle.done:
            calls.update(["manual"])
            ctx.complete_step(handle, None)
        ctx.sleep_for("nap", 5)
        return [first, handle.done]

    spawned = client.spawn("nulls", {})
    outcomes(client)
    clock(T0 + timedelta(seconds=6))
    assert outcomes(client) == [Outcome.COMPLETED]
    assert calls == {"maybe": 1, "manual": 1}
    assert client.fetch_task_result(spawned.task_id).result == [None, True]


def test_a_non_json_step_result_fails_the_task_naming_the_step(client, conn, clock):
    @client.register_task("bad-step", default_max_attempts=1)
    def bad_step(params, ctx):
        ctx.step("fetch", lambda: 1)
        ctx.step("fetch", lambda: {"when": datetime(2024, 1, 1)})
        return "unreachable"

    spawned = client.spawn("bad-step", {})
    assert outcomes(client) == [Outcome.FAILED]
    failure = client.fetch_task_result(spawned.task_id).failure
    assert failure["name"] == "InvalidStepResult"
    assert failure["type"] == "absurd_tui.sdk.errors.InvalidStepResult"
    assert failure["message"] == (
        'Step "fetch#2" of task "bad-step" returned a value that cannot be checkpointed: '
        'result["when"] is of type datetime.datetime, which is not JSON.'
    )
    assert "Traceback" in failure["traceback"]
    assert checkpoints(conn, "default", spawned.task_id) == {"fetch": 1}


def test_a_non_json_task_result_fails_with_a_clear_message(client, clock):
    @client.register_task("bad-result", default_max_attempts=1)
    def bad_result(params, ctx):
        return {"data": {1, 2}}

    spawned = client.spawn("bad-result", {})
    outcomes(client)
    failure = client.fetch_task_result(spawned.task_id).failure
    assert failure["message"].startswith(
        'Task "bad-result" returned a value that cannot be stored: result["data"] is of type set'
    )


def test_a_seven_day_sleep_is_durable_and_wakes_on_time(client, conn, clock):
    calls = Counter()

    @client.register_task("week")
    def week(params, ctx):
        ctx.step("before", lambda: calls.update(["before"]))
        ctx.sleep_for("week", timedelta(days=7))
        ctx.step("after", lambda: calls.update(["after"]))
        return "awake"

    spawned = client.spawn("week", {})
    assert outcomes(client) == [Outcome.SUSPENDED]
    (run,) = run_rows(conn, "default", spawned.task_id)
    assert run["state"] == "sleeping"
    assert run["available_at"] == T0 + timedelta(days=7)
    assert datetime.fromisoformat(
        checkpoints(conn, "default", spawned.task_id)["week"]
    ) == T0 + timedelta(days=7)
    clock(T0 + timedelta(days=7) - timedelta(seconds=1))
    assert outcomes(client) == []
    clock(T0 + timedelta(days=7))
    assert outcomes(client) == [Outcome.COMPLETED]
    assert calls == {"before": 1, "after": 1}
    runs = run_rows(conn, "default", spawned.task_id)
    assert [(r["attempt"], r["state"]) for r in runs] == [(1, "completed")]


def test_sleep_until_checks_its_argument(client, clock):
    problems = []

    @client.register_task("until")
    def until(params, ctx):
        for bad in (datetime(2031, 1, 1), "tomorrow"):
            try:
                ctx.sleep_until("s", bad)
            except (ValueError, TypeError) as exc:
                problems.append(type(exc).__name__)
        ctx.sleep_until("unix", (T0 + timedelta(seconds=30)).timestamp())
        return "woke"

    spawned = client.spawn("until", {})
    assert outcomes(client) == [Outcome.SUSPENDED]
    assert problems == ["ValueError", "TypeError"]
    clock(T0 + timedelta(seconds=30))
    assert outcomes(client) == [Outcome.COMPLETED]
    assert client.fetch_task_result(spawned.task_id).result == "woke"


def test_an_event_emitted_before_the_wait_is_seen_at_once(client, clock):
    @client.register_task("early")
    def early(params, ctx):
        return ctx.await_event("order:1")

    client.emit_event("order:1", {"paid": True})
    spawned = client.spawn("early", {})
    assert outcomes(client) == [Outcome.COMPLETED]
    assert client.fetch_task_result(spawned.task_id).result == {"paid": True}


def test_a_wait_suspends_until_the_event_is_emitted(client, conn, clock):
    @client.register_task("later")
    def later(params, ctx):
        value = ctx.await_event("go", timeout=3600)
        return {"got": value}

    spawned = client.spawn("later", {})
    assert outcomes(client) == [Outcome.SUSPENDED]
    assert task_row(conn, "default", spawned.task_id)["state"] == "sleeping"
    assert outcomes(client) == []
    client.emit_event("go", [1, 2])
    assert outcomes(client) == [Outcome.COMPLETED]
    assert client.fetch_task_result(spawned.task_id).result == {"got": [1, 2]}


def test_an_event_timeout_is_durable_and_replays_as_a_timeout(client, conn, clock):
    seen = []

    @client.register_task("timeout")
    def timeout(params, ctx):
        try:
            outcome = ["got", ctx.await_event("go", timeout=60)]
        except TimeoutError as exc:
            outcome = ["timeout", str(exc)]
        seen.append(outcome)
        ctx.step("record", lambda: outcome)
        ctx.sleep_for("pause", 10)
        return outcome

    spawned = client.spawn("timeout", {})
    assert outcomes(client) == [Outcome.SUSPENDED]
    clock(T0 + timedelta(seconds=61))
    assert outcomes(client) == [Outcome.SUSPENDED]
    # Emitted after the timeout: the replay must still take the timeout path.
    client.emit_event("go", "too late")
    clock(T0 + timedelta(seconds=72))
    assert outcomes(client) == [Outcome.COMPLETED]
    expected = ["timeout", 'Timed out waiting for event "go" at "$awaitEvent:go"']
    assert seen == [expected, expected]
    assert client.fetch_task_result(spawned.task_id).result == expected


def test_context_identity_headers_and_current_context(client, connect, clock):
    observed = {}

    @client.register_task("who", queue="default")
    def who(params, ctx):
        observed.update(
            task_id=ctx.task_id,
            run_id=ctx.run_id,
            attempt=ctx.attempt,
            task_name=ctx.task_name,
            queue_name=ctx.queue_name,
            headers=dict(ctx.headers),
            current=get_current_context() is ctx,
            params=ctx.params,
        )
        with pytest.raises(TypeError):
            ctx.headers["new"] = 1
        ctx.heartbeat(600)
        observed["expires"] = (
            connect()
            .execute(
                'SELECT claim_expires_at FROM absurd."r_default" WHERE run_id = %s', (ctx.run_id,)
            )
            .fetchone()[0]
        )

    spawned = client.spawn("who", {"p": 1}, headers={"trace": "t-1"})
    assert outcomes(client) == [Outcome.COMPLETED]
    assert observed["task_id"] == spawned.task_id and observed["run_id"] == spawned.run_id
    assert (observed["attempt"], observed["task_name"], observed["queue_name"]) == (
        1,
        "who",
        "default",
    )
    assert observed["headers"] == {"trace": "t-1"} and observed["params"] == {"p": 1}
    assert observed["current"] is True
    assert observed["expires"] == T0 + timedelta(seconds=600)
    assert get_current_context() is None
    with pytest.raises(TypeError):
        from absurd_tui.sdk import TaskContext

        TaskContext()


def test_emit_from_a_task_wakes_another(client, clock):
    @client.register_task("sender")
    def sender(params, ctx):
        ctx.emit_event("ping", {"from": ctx.task_id})
        return "sent"

    @client.register_task("receiver")
    def receiver(params, ctx):
        return ctx.await_event("ping")

    receiving = client.spawn("receiver", {})
    assert outcomes(client) == [Outcome.SUSPENDED]
    sending = client.spawn("sender", {})
    assert outcomes(client) == [Outcome.COMPLETED]
    assert outcomes(client) == [Outcome.COMPLETED]
    assert client.fetch_task_result(receiving.task_id).result == {"from": sending.task_id}


def test_an_unknown_task_is_deferred_not_failed(client, conn, clock):
    spawned = client.spawn("nobody-registered-this", {}, queue="default")
    assert outcomes(client) == [Outcome.DEFERRED]
    (run,) = run_rows(conn, "default", spawned.task_id)
    assert run["state"] == "sleeping" and run["attempt"] == 1 and run["failure_reason"] is None
    assert T0 + timedelta(seconds=15) <= run["available_at"] <= T0 + timedelta(seconds=30)
    assert task_row(conn, "default", spawned.task_id)["state"] == "sleeping"


def test_cancellation_is_observed_at_the_next_step(db_dsn, connect, registry):
    worker_conn = connect()
    worker = Absurd(worker_conn, registry=registry)
    worker.create_queue()
    admin = Absurd(connect(), registry=registry)
    in_between = threading.Event()
    release = threading.Event()
    ran = Counter()

    @registry.register_task("long")
    def long_task(params, ctx):
        ctx.step("one", lambda: ran.update(["one"]))
        in_between.set()
        release.wait(10)
        ctx.step("two", lambda: ran.update(["two"]))
        return "finished"

    spawned = admin.spawn("long", {})
    results = []
    thread = threading.Thread(target=lambda: results.extend(worker.work_batch()))
    thread.start()
    assert in_between.wait(10)
    admin.cancel_task(spawned.task_id)
    release.set()
    thread.join(10)
    assert [r.outcome for r in results] == [Outcome.CANCELLED]
    assert isinstance(results[0].error, CancelledTask)
    assert ran == {"one": 1}
    assert admin.fetch_task_result(spawned.task_id).state == "cancelled"


def test_a_run_failed_elsewhere_stops_quietly_and_is_not_failed_twice(connect, registry):
    worker = Absurd(connect(), registry=registry)
    worker.create_queue()
    admin_conn = connect()
    in_between = threading.Event()
    release = threading.Event()
    ran = Counter()

    @registry.register_task("overtaken", default_max_attempts=3)
    def overtaken(params, ctx):
        ctx.step("one", lambda: ran.update([f"one@{ctx.attempt}"]))
        if ctx.attempt == 1:
            in_between.set()
            release.wait(10)
        ctx.step("two", lambda: ran.update([f"two@{ctx.attempt}"]))
        return ctx.attempt

    spawned = worker.spawn("overtaken", {}, retry_strategy={"kind": "none"})
    results = []
    thread = threading.Thread(target=lambda: results.extend(worker.work_batch()))
    thread.start()
    assert in_between.wait(10)
    admin_conn.execute(
        "SELECT absurd.fail_run('default', %s, %s, NULL)",
        (spawned.run_id, json.dumps({"name": "$ClaimTimeout", "message": "simulated"})),
    )
    release.set()
    thread.join(10)
    assert [r.outcome for r in results] == [Outcome.LOST]
    runs = run_rows(admin_conn, "default", spawned.task_id)
    assert runs[0]["state"] == "failed"
    assert runs[0]["failure_reason"]["message"] == "simulated"
    assert [r["attempt"] for r in runs] == [1, 2]
    assert [r.outcome for r in worker.work_batch()] == [Outcome.COMPLETED]
    assert ran == {"one@1": 1, "two@2": 1}


def test_await_task_result_inside_a_task(client, conn, registry, clock):
    other = Absurd(conn, queue_name="children", registry=registry)
    other.create_queue()

    @registry.register_task("child", queue="children")
    def child(params, ctx):
        return params["n"] * 2

    @client.register_task("parent")
    def parent(params, ctx):
        with pytest.raises(ValueError, match="same queue"):
            ctx.await_task_result(ctx.task_id)
        snapshot = ctx.await_task_result(params["child"], queue_name="children", timeout=5)
        return snapshot.result

    kid = other.spawn("child", {"n": 21})
    assert [r.outcome for r in other.work_batch()] == [Outcome.COMPLETED]
    spawned = client.spawn("parent", {"child": kid.task_id})
    assert outcomes(client) == [Outcome.COMPLETED]
    assert client.fetch_task_result(spawned.task_id).result == 42
    assert checkpoints(conn, "default", spawned.task_id)[f"$awaitTaskResult:{kid.task_id}"] == {
        "state": "completed",
        "result": 42,
    }


def test_run_step_decorator_forms(client, clock):
    @client.register_task("decorated")
    def decorated(params, ctx):
        @ctx.run_step
        def first():
            return 1

        @ctx.run_step()
        def second():
            return 2

        @ctx.run_step("third-name")
        def third():
            return 3

        return [first, second, third]

    spawned = client.spawn("decorated", {})
    outcomes(client)
    assert client.fetch_task_result(spawned.task_id).result == [1, 2, 3]


def test_ctx_emit_event_rejects_non_json(client, clock):
    @client.register_task("bad-emit", default_max_attempts=1)
    def bad_emit(params, ctx):
        ctx.emit_event("e", {"x": object()})

    spawned = client.spawn("bad-emit", {})
    outcomes(client)
    failure = client.fetch_task_result(spawned.task_id).failure
    assert failure["name"] == "InvalidParams"
    assert 'payload["x"] is of type object' in failure["message"]


def test_the_engine_reports_durable_event_timeouts_and_fast_paths(conn):
    assert detect_features(conn) == SchemaFeatures(await_event_timed_out=True, fast_paths=True)


def test_an_upstream_schema_gets_the_official_sdk_timeout_behaviour(client, conn, clock):
    # As against upstream's engine, whose await_event has no timed_out column.
    client._features = SchemaFeatures(await_event_timed_out=False)

    @client.register_task("upstream-wait")
    def upstream_wait(params, ctx):
        try:
            return ctx.await_event("go", timeout=60)
        except TimeoutError:
            return "timed out"

    spawned = client.spawn("upstream-wait", {})
    assert outcomes(client) == [Outcome.SUSPENDED]
    clock(T0 + timedelta(seconds=61))
    statements: list[str] = []

    class Recording(psycopg.Cursor):
        def execute(self, query, params=None, **kwargs):
            statements.append(query.as_string(self) if hasattr(query, "as_string") else str(query))
            return super().execute(query, params, **kwargs)

    conn.cursor_factory = Recording
    assert outcomes(client) == [Outcome.COMPLETED]
    assert client.fetch_task_result(spawned.task_id).result == "timed out"
    # Decided from the claim row alone, as the official SDK does: await_event not called.
    assert any("claim_task" in q for q in statements)
    assert not any("await_event" in q for q in statements)
