"""absurd.spawn_task: options, validation, defaults and idempotency."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from .helpers import (
    T0,
    Spawned,
    claim_one,
    complete,
    count,
    create_queue,
    fail,
    is_json_null,
    raises_db,
    run_row,
    runs_of,
    set_now,
    spawn,
    task_row,
)


@pytest.fixture(autouse=True)
def queue(conn):
    set_now(conn, T0)
    return create_queue(conn)


def test_spawn_inserts_a_pending_task_and_its_first_run(conn):
    spawned = spawn(conn, name="send-mail", params={"to": "a@example.com"})
    assert spawned.created is True
    assert spawned.attempt == 1

    task = task_row(conn, spawned.task_id)
    assert task["task_name"] == "send-mail"
    assert task["params"] == {"to": "a@example.com"}
    assert task["state"] == "pending"
    assert task["attempts"] == 1
    assert task["last_attempt_run"] == spawned.run_id
    assert task["enqueue_at"] == T0
    assert task["first_started_at"] is None
    assert task["completed_payload"] is None
    assert task["cancelled_at"] is None
    assert task["headers"] is None
    assert task["retry_strategy"] is None
    assert task["max_attempts"] is None
    assert task["cancellation"] is None
    assert task["idempotency_key"] is None

    run = run_row(conn, spawned.run_id)
    assert run["task_id"] == spawned.task_id
    assert run["attempt"] == 1
    assert run["state"] == "pending"
    assert run["available_at"] == T0
    assert run["created_at"] == T0
    for column in (
        "claimed_by",
        "claim_expires_at",
        "wake_event",
        "event_payload",
        "started_at",
        "completed_at",
        "failed_at",
        "result",
        "failure_reason",
    ):
        assert run[column] is None, column


def test_spawn_ids_are_uuidv7(conn):
    spawned = spawn(conn)
    assert spawned.task_id.version == 7
    assert spawned.run_id.version == 7


def test_spawn_stores_every_option(conn):
    options = {
        "headers": {"trace": "abc", "nested": [1, {"x": None}]},
        "retry_strategy": {
            "kind": "exponential",
            "base_seconds": 2,
            "factor": 3,
            "max_seconds": 60,
        },
        "max_attempts": 7,
        "cancellation": {"max_duration": 300, "max_delay": 60},
        "idempotency_key": "order-42",
    }
    spawned = spawn(conn, params=[1, 2, 3], **options)
    task = task_row(conn, spawned.task_id)
    assert task["params"] == [1, 2, 3]
    assert task["headers"] == options["headers"]
    assert task["retry_strategy"] == options["retry_strategy"]
    assert task["max_attempts"] == 7
    assert task["cancellation"] == options["cancellation"]
    assert task["idempotency_key"] == "order-42"


def test_headers_and_retry_strategy_are_stored_as_given(conn):
    # Headers are free JSON; a strategy is checked (AB003) but stored as sent, extra keys
    # and all.
    strategy = {"kind": "fixed", "base_seconds": "5", "extra": True}
    spawned = spawn(conn, headers="just text", retry_strategy=strategy)
    task = task_row(conn, spawned.task_id)
    assert task["headers"] == "just text"
    assert task["retry_strategy"] == strategy


def test_unknown_option_keys_are_ignored(conn):
    spawned = spawn(conn, colour="blue", queue="elsewhere")
    assert spawned.created is True
    assert task_row(conn, spawned.task_id)["state"] == "pending"


def test_options_default_to_an_empty_object(conn):
    task_id = conn.execute(
        "SELECT task_id FROM absurd.spawn_task(%s, %s, %s)",
        ("jobs", "three-args", json.dumps({"a": 1})),
    ).fetchone()[0]
    assert task_row(conn, task_id)["params"] == {"a": 1}


def test_null_params_are_stored_as_json_null(conn):
    task_id = conn.execute(
        "SELECT task_id FROM absurd.spawn_task(%s, %s, NULL, '{}')", ("jobs", "no-params")
    ).fetchone()[0]
    assert is_json_null(conn, "t", "params", "task_id", task_id)
    # What the SDK sends for params=None: the text 'null'.
    spawned = spawn(conn, params=None)
    assert is_json_null(conn, "t", "params", "task_id", spawned.task_id)


@pytest.mark.parametrize("name", ["", None])
def test_blank_task_name_is_rejected(conn, name):
    with raises_db("P0001", "task_name must be provided"):
        conn.execute("SELECT * FROM absurd.spawn_task(%s, %s, %s, %s)", ("jobs", name, "{}", "{}"))
    assert count(conn, "t") == 0
    assert count(conn, "r") == 0


@pytest.mark.parametrize("bad", [0, -1])
def test_max_attempts_below_one_is_rejected(conn, bad):
    with raises_db("P0001", "max_attempts must be >= 1"):
        spawn(conn, max_attempts=bad)
    assert count(conn, "t") == 0


def test_max_attempts_of_one_is_accepted(conn):
    spawned = spawn(conn, max_attempts=1)
    assert task_row(conn, spawned.task_id)["max_attempts"] == 1


def test_spawn_on_a_missing_queue_is_an_undefined_table_error(conn):
    with raises_db("42P01"):
        spawn(conn, "no-such-queue")


def test_spawn_accepts_parameters_typed_as_the_sdk_sends_them(conn):
    # All four arguments as untyped text literals, exactly like psycopg sends str.
    row = conn.execute(
        "SELECT task_id, run_id, attempt, created FROM absurd.spawn_task(%s, %s, %s, %s)",
        ("jobs", "typed", '{"a": 1}', '{"max_attempts": 3}'),
    ).fetchone()
    assert row[2] == 1 and row[3] is True


def test_idempotent_spawn_returns_the_existing_task(conn):
    first = spawn(conn, params={"v": 1}, idempotency_key="k1")
    second = spawn(conn, params={"v": 2}, idempotency_key="k1")
    assert second.created is False
    assert second.task_id == first.task_id
    assert second.run_id == first.run_id
    assert second.attempt == 1
    assert count(conn, "t") == 1
    assert count(conn, "r") == 1
    # The first spawn's inputs are kept.
    assert task_row(conn, first.task_id)["params"] == {"v": 1}


def test_idempotent_spawn_reports_the_latest_run_and_attempts(conn):
    first = spawn(conn, idempotency_key="k1", max_attempts=5)
    run = claim_one(conn)
    fail(conn, run["run_id"])
    latest = runs_of(conn, first.task_id)[-1]
    assert latest["attempt"] == 2

    again = spawn(conn, idempotency_key="k1")
    assert again == Spawned(first.task_id, latest["run_id"], 2, False)


def test_idempotent_spawn_of_a_finished_task_still_returns_it(conn):
    first = spawn(conn, idempotency_key="done")
    complete(conn, claim_one(conn)["run_id"], 1)
    again = spawn(conn, idempotency_key="done")
    assert (again.task_id, again.run_id, again.created) == (first.task_id, first.run_id, False)
    assert count(conn, "t") == 1


def test_different_idempotency_keys_create_different_tasks(conn):
    a = spawn(conn, idempotency_key="a")
    b = spawn(conn, idempotency_key="b")
    c = spawn(conn)
    d = spawn(conn)
    assert len({a.task_id, b.task_id, c.task_id, d.task_id}) == 4
    assert all(s.created for s in (a, b, c, d))


def test_idempotency_keys_are_scoped_to_the_queue(conn):
    create_queue(conn, "other")
    a = spawn(conn, "jobs", idempotency_key="same")
    b = spawn(conn, "other", idempotency_key="same")
    assert a.task_id != b.task_id
    assert b.created is True


def test_spawn_time_follows_the_fake_clock(conn):
    later = T0 + timedelta(hours=3)
    set_now(conn, later)
    spawned = spawn(conn)
    assert task_row(conn, spawned.task_id)["enqueue_at"] == later
    assert run_row(conn, spawned.run_id)["available_at"] == later
