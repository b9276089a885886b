"""Contract section 0: how clients call the engine. Parameter types as psycopg sends them,
no ambiguous overloads, and every function usable inside the caller's own transaction."""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest

from .helpers import (
    Q,
    await_event,
    claim,
    claim_one,
    complete,
    count,
    create_queue,
    emit,
    raises_db,
    set_checkpoint,
    spawn,
    task_row,
)

SDK_FUNCTIONS = [
    "current_time",
    "create_queue",
    "drop_queue",
    "list_queues",
    "spawn_task",
    "claim_task",
    "complete_run",
    "fail_run",
    "schedule_run",
    "set_task_checkpoint_state",
    "get_task_checkpoint_state",
    "get_task_checkpoint_states",
    "extend_claim",
    "await_event",
    "emit_event",
    "cancel_task",
    "retry_task",
    "get_task_result",
    "set_queue_policy",
    "get_queue_policy",
    "cleanup_tasks",
    "cleanup_events",
    "cleanup_all_queues",
    "get_schema_version",
    "portable_uuidv7",
    "validate_queue_name",
]


def signatures(conn) -> dict[str, list[str]]:
    rows = conn.execute(
        """SELECT p.proname, pg_get_function_identity_arguments(p.oid)
             FROM pg_proc p WHERE p.pronamespace = 'absurd'::regnamespace"""
    ).fetchall()
    out: dict[str, list[str]] = {}
    for name, args in rows:
        out.setdefault(name, []).append(args)
    return out


def test_every_contract_function_exists(conn):
    present = signatures(conn)
    missing = [name for name in SDK_FUNCTIONS if name not in present]
    assert not missing, f"missing functions: {missing}"


def test_only_create_queue_is_overloaded(conn):
    overloaded = {name: args for name, args in signatures(conn).items() if len(args) > 1}
    assert set(overloaded) == {"create_queue"}, overloaded
    assert sorted(overloaded["create_queue"]) == sorted(
        ["p_queue_name text", "p_queue_name text, p_storage_mode text"]
    )


def test_no_contract_function_takes_smallint(conn):
    # psycopg sends small Python ints as int2; int8 parameters would not accept int4 either
    # way round, and int2 parameters would reject larger values.
    rows = conn.execute(
        """SELECT p.proname, pg_get_function_identity_arguments(p.oid)
             FROM pg_proc p
            WHERE p.pronamespace = 'absurd'::regnamespace
              AND 'int2'::regtype = ANY(p.proargtypes::regtype[])"""
    ).fetchall()
    assert rows == []


def test_sdk_statements_resolve_with_sdk_parameter_types(conn):
    # The official SDK's statements, with the Python values it passes: str for queue names,
    # JSON and ids; int (int2 or int4) for counts; None as an untyped NULL.
    create_queue(conn)
    task_id, run_id, _attempt = conn.execute(
        "SELECT task_id, run_id, attempt FROM absurd.spawn_task(%s, %s, %s, %s)",
        (Q, "typed", json.dumps({"p": 1}), json.dumps({"max_attempts": 5})),
    ).fetchone()
    rows = conn.execute(
        """SELECT run_id, task_id, attempt, task_name, params, retry_strategy, max_attempts,
                  headers, wake_event, event_payload
             FROM absurd.claim_task(%s, %s, %s, %s)""",
        (Q, "worker", 120, 1),
    ).fetchall()
    assert rows[0][0] == run_id
    conn.execute(
        """SELECT checkpoint_name, state, status, owner_run_id, updated_at
             FROM absurd.get_task_checkpoint_states(%s, %s, %s)""",
        (Q, str(task_id), str(run_id)),
    )
    conn.execute(
        "SELECT absurd.set_task_checkpoint_state(%s, %s, %s, %s, %s, %s)",
        (Q, str(task_id), "step", json.dumps({"v": 1}), str(run_id), 120),
    )
    conn.execute(
        """SELECT checkpoint_name, state, status, owner_run_id, updated_at
             FROM absurd.get_task_checkpoint_state(%s, %s, %s)""",
        (Q, str(task_id), "step"),
    )
    conn.execute("SELECT absurd.extend_claim(%s, %s, %s)", (Q, str(run_id), 120))
    got = conn.execute(
        "SELECT should_suspend, payload FROM absurd.await_event(%s, %s, %s, %s, %s, %s)",
        (Q, str(task_id), str(run_id), "$awaitEvent:e", "e", None),
    ).fetchone()
    assert got == (True, None)
    conn.execute("SELECT absurd.emit_event(%s, %s, %s)", (Q, "e", json.dumps(None)))
    claim_one(conn)
    conn.execute(
        "SELECT absurd.schedule_run(%s, %s, absurd.current_time() + make_interval(secs => %s::double precision))",
        (Q, str(run_id), 0.0),
    )
    claim_one(conn)
    conn.execute("SELECT absurd.complete_run(%s, %s, %s)", (Q, str(run_id), json.dumps("ok")))
    state = conn.execute(
        "SELECT state, result, failure_reason FROM absurd.get_task_result(%s, %s)",
        (Q, str(task_id)),
    ).fetchone()
    assert state == ("completed", "ok", None)


def test_await_event_timeout_accepts_an_int4_value(conn):
    create_queue(conn)
    spawn(conn)
    run = claim_one(conn)
    got = await_event(conn, run["task_id"], run["run_id"], "e", step="s", timeout=70000)
    assert got.should_suspend is True


def test_a_whole_life_cycle_inside_one_transaction_rolls_back_cleanly(conn):
    create_queue(conn)
    with pytest.raises(RuntimeError), conn.transaction():
        spawned = spawn(conn, idempotency_key="tx")
        run = claim_one(conn)
        set_checkpoint(conn, spawned.task_id, "s", 1, run["run_id"], extend_by=30)
        await_event(conn, spawned.task_id, run["run_id"], "e", step="w")
        emit(conn, "e", 1)
        run = claim_one(conn)
        complete(conn, run["run_id"], "done")
        assert task_row(conn, spawned.task_id)["state"] == "completed"
        raise RuntimeError("the caller rolls back")
    for prefix in ("t", "r", "c", "e", "w"):
        assert count(conn, prefix) == 0, prefix
    again = spawn(conn, idempotency_key="tx")
    assert again.created is True


def test_functions_do_not_commit_on_their_own(conn, connect):
    create_queue(conn)
    other = connect()
    with conn.transaction():
        spawned = spawn(conn)
        claim_one(conn)
        # Nothing is visible to another session until the caller commits.
        assert other.execute('SELECT count(*) FROM absurd."t_jobs"').fetchone()[0] == 0
    assert other.execute('SELECT count(*) FROM absurd."t_jobs"').fetchone()[0] == 1
    assert task_row(other, spawned.task_id)["state"] == "running"


def test_an_error_inside_a_caller_transaction_leaves_it_usable_with_a_savepoint(conn):
    create_queue(conn)
    with conn.transaction():
        spawned = spawn(conn)
        with pytest.raises(psycopg.Error), conn.transaction():  # savepoint
            complete(conn, uuid.uuid4())
        assert claim(conn)[0]["task_id"] == spawned.task_id


def test_fractional_cancellation_values_are_refused_at_spawn(conn):
    # Upstream casts these to bigint inside claim_task, so one bad task breaks claiming for
    # the whole queue; refusing them at spawn keeps the queue working.
    create_queue(conn)
    good = spawn(conn)
    for policy in ({"max_delay": 1.5}, {"max_duration": 0.25}, {"max_duration": "soon"}):
        with raises_db("P0001"):
            spawn(conn, cancellation=policy)
    assert count(conn, "t") == 1
    assert claim_one(conn)["task_id"] == good.task_id
