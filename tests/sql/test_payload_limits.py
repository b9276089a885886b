"""The engine's size limit for clients that do not check it themselves: params, headers,
payloads, checkpoint states and results over absurd.max_payload_bytes() are refused
(SQLSTATE 22001) and change nothing; an oversized failure reason is cut to fit."""

from __future__ import annotations

import json

import pytest

from .helpers import (
    claim_one,
    complete,
    count,
    create_queue,
    emit,
    event_row,
    fail,
    raises_db,
    run_row,
    set_checkpoint,
    spawn,
    task_row,
)


@pytest.fixture
def small_limit(conn):
    """A 1,000-byte limit for this session, the way an operator would set it."""
    conn.execute("SET absurd.max_payload_bytes = 1000")
    create_queue(conn)
    return 1000


def test_the_default_limit_is_2_mib(conn):
    assert conn.execute("SELECT absurd.max_payload_bytes()").fetchone()[0] == 2 * 1024 * 1024


def test_a_bad_setting_is_named(conn):
    conn.execute("SET absurd.max_payload_bytes = 'lots'")
    with raises_db(
        "22023", 'absurd.max_payload_bytes must be a whole number of bytes >= 1, not "lots"'
    ):
        conn.execute("SELECT absurd.max_payload_bytes()")


def test_oversized_params_and_headers_are_refused_and_nothing_is_spawned(conn, small_limit):
    with raises_db("22001", "params is 1012 bytes, over the limit of 1000 bytes"):
        spawn(conn, params={"blob": "x" * 1000})
    with raises_db("22001", "headers is 1012 bytes, over the limit of 1000 bytes"):
        spawn(conn, params={}, headers={"blob": "x" * 1000})
    assert count(conn, "t") == 0 and count(conn, "r") == 0
    spawn(conn, params={"blob": "x" * 900})
    assert count(conn, "t") == 1


def test_an_oversized_event_payload_is_refused(conn, small_limit):
    with raises_db("22001", "payload is"):
        emit(conn, "ready", {"blob": "é" * 600})
    assert event_row(conn, "ready") is None


def test_oversized_checkpoints_and_results_are_refused(conn, small_limit):
    spawned = spawn(conn, params={})
    run = claim_one(conn)
    with raises_db("22001", 'the state of checkpoint "fetch" is 1002 bytes'):
        set_checkpoint(conn, spawned.task_id, "fetch", "x" * 1000, run["run_id"])
    assert count(conn, "c") == 0
    with raises_db("22001", "result is"):
        complete(conn, run["run_id"], ["x" * 1000])
    assert run_row(conn, run["run_id"])["state"] == "running"
    complete(conn, run["run_id"], "fits")
    assert task_row(conn, spawned.task_id)["state"] == "completed"


def test_an_oversized_failure_reason_is_cut_to_fit_not_refused(conn, small_limit):
    spawned = spawn(conn, params={}, max_attempts=1)
    run = claim_one(conn)
    reason = {
        "name": "ValueError",
        "message": "start " + "m" * 5000,
        "traceback": "t" * 5000 + " the end",
        "retryable": False,
    }
    fail(conn, run["run_id"], reason)
    stored = run_row(conn, run["run_id"])["failure_reason"]
    assert task_row(conn, spawned.task_id)["state"] == "failed"
    assert stored["truncated"] is True and stored["original_bytes"] == len(json.dumps(reason))
    assert stored["name"] == "ValueError" and stored["retryable"] is False
    assert stored["message"].startswith("start mmm")
    assert stored["traceback"].startswith("...(truncated)...") and stored["traceback"].endswith(
        " the end"
    )
    assert len(json.dumps(stored).encode()) <= small_limit


def test_a_failure_reason_within_the_limit_is_kept_as_it_is(conn, small_limit):
    spawn(conn, params={}, max_attempts=1)
    run = claim_one(conn)
    fail(conn, run["run_id"], {"name": "E", "message": "short"})
    assert run_row(conn, run["run_id"])["failure_reason"] == {"name": "E", "message": "short"}


def test_a_reason_that_cannot_be_cut_enough_still_fails_the_run(conn):
    conn.execute("SET absurd.max_payload_bytes = 100")
    create_queue(conn)
    spawned = spawn(conn, params={}, max_attempts=1)
    run = claim_one(conn)
    fail(conn, run["run_id"], ["not", "an", "object", "x" * 500])
    stored = run_row(conn, run["run_id"])["failure_reason"]
    assert task_row(conn, spawned.task_id)["state"] == "failed"
    assert stored["truncated"] is True
