"""Retry strategies are checked (SQLSTATE AB003, as upstream 0.5) when a task is spawned,
and a strategy stored before that check existed fails its task for good instead of
stopping the worker that fails it."""

from __future__ import annotations

import json

import pytest

from .helpers import (
    FakeClock,
    claim_one,
    create_queue,
    fail,
    force_update,
    raises_db,
    retry,
    runs_of,
    spawn,
    task_row,
)


@pytest.fixture
def clock(conn):
    return FakeClock(conn)


@pytest.fixture(autouse=True)
def queue(conn):
    return create_queue(conn)


INVALID = [
    ([1, 2], "retry_strategy must be a JSON object"),
    ("fixed", "retry_strategy must be a JSON object"),
    ({"kind": "mystery"}, 'Unsupported retry strategy kind "mystery"'),
    ({"kind": "fixed", "base_seconds": -1}, "base_seconds must be between 0 and 86400"),
    ({"kind": "fixed", "base_seconds": 86401}, "base_seconds must be between 0 and 86400"),
    ({"kind": "fixed", "base_seconds": "NaN"}, "base_seconds must be between 0 and 86400"),
    ({"kind": "fixed", "base_seconds": "soon"}, "contains an invalid number"),
    ({"kind": "fixed", "base_seconds": True}, "contains an invalid number"),
    ({"kind": "exponential", "factor": -2}, "factor must be a finite non-negative number"),
    ({"kind": "exponential", "factor": "Infinity"}, "factor must be a finite non-negative"),
    ({"kind": "exponential", "max_seconds": 90000}, "max_seconds must be between 0 and 86400"),
    ({"kind": "exponential", "base_seconds": "1e400"}, "contains an invalid number"),
]


@pytest.mark.parametrize(("strategy", "message"), INVALID)
def test_spawn_refuses_an_invalid_strategy_with_ab003_and_keeps_nothing(conn, strategy, message):
    with raises_db("AB003", message):
        spawn(conn, retry_strategy=strategy)
    assert conn.execute("SELECT count(*) FROM absurd.t_jobs").fetchone()[0] == 0


def test_keys_the_kind_does_not_use_are_not_checked(conn):
    spawned = spawn(conn, retry_strategy={"kind": "fixed", "factor": "anything", "max_seconds": -5})
    assert spawned.created
    assert spawn(conn, retry_strategy={"kind": "none", "base_seconds": -1}).created


@pytest.mark.parametrize(
    ("strategy", "attempt", "delay"),
    [
        ({"kind": "exponential", "base_seconds": 30, "factor": 2}, 100000, 86400),
        ({"kind": "exponential", "base_seconds": 30, "factor": 0.5}, 100000, 0),
        ({"kind": "exponential", "base_seconds": 0, "factor": 5}, 50, 0),
        ({"kind": "exponential", "base_seconds": 1, "factor": 0}, 2, 0),
        ({"kind": "exponential", "max_seconds": 0}, 3, 0),
    ],
)
def test_delays_saturate_instead_of_overflowing(conn, strategy, attempt, delay):
    got = conn.execute(
        "SELECT absurd.retry_delay_seconds(%s::jsonb, %s)", (json.dumps(strategy), attempt)
    ).fetchone()[0]
    assert got == delay


def test_a_legacy_invalid_strategy_fails_the_task_for_good(conn, clock):
    spawned = spawn(conn, max_attempts=5)
    force_update(conn, "t", "task_id", spawned.task_id, retry_strategy='{"kind": "mystery"}')
    claim_one(conn)
    fail(conn, spawned.run_id)
    task = task_row(conn, spawned.task_id)
    assert task["state"] == "failed"
    assert task["last_attempt_run"] == spawned.run_id
    assert [r["state"] for r in runs_of(conn, spawned.task_id)] == ["failed"]
    # retry_task in place does not plan a delay, so the task can still be revived by hand.
    revived = retry(conn, spawned.task_id)
    assert revived.attempt == 2
    assert task_row(conn, spawned.task_id)["state"] == "pending"


def test_a_legacy_invalid_strategy_with_an_explicit_retry_time_is_retried(conn, clock):
    spawned = spawn(conn, max_attempts=5)
    force_update(conn, "t", "task_id", spawned.task_id, retry_strategy='{"kind": "mystery"}')
    claim_one(conn)
    conn.execute(
        "SELECT absurd.fail_run('jobs', %s, '{}'::jsonb, absurd.current_time())",
        (spawned.run_id,),
    )
    assert [r["state"] for r in runs_of(conn, spawned.task_id)] == ["failed", "pending"]
