"""The one error classification, against real errors provoked on a real server."""

from __future__ import annotations

import threading

import psycopg
import pytest
from support import wait_until

from absurd_tui import ops
from absurd_tui.db.errors import ErrorKind, classify
from absurd_tui.ops.errors import ConnectionLost, TimedOut, translate


def _raised(call) -> BaseException:
    try:
        call()
    except BaseException as exc:  # the point is to capture whatever it raises
        return exc
    raise AssertionError("expected an error")


def test_statement_timeout_is_timed_out_and_the_connection_survives(conn):
    conn.execute("SET statement_timeout = 50")
    exc = _raised(lambda: conn.execute("SELECT pg_sleep(5)"))
    assert isinstance(exc, psycopg.errors.QueryCanceled)
    assert classify(exc, conn) is ErrorKind.TIMED_OUT
    error = translate(exc, conn=conn)
    assert isinstance(error, TimedOut) and not error.unreachable and error.transient
    assert "took too long" in str(error)
    # Timed out is not lost: the same connection answers the next query.
    assert conn.execute("SELECT 1").fetchone() == (1,)


def test_lock_timeout_is_timed_out(connect):
    holder, waiter = connect(), connect()
    holder.execute("CREATE TABLE locked (id int)")
    with holder.transaction():
        holder.execute("LOCK TABLE locked IN ACCESS EXCLUSIVE MODE")
        waiter.execute("SET lock_timeout = 50")
        exc = _raised(lambda: waiter.execute("SELECT * FROM locked"))
    assert isinstance(exc, psycopg.errors.LockNotAvailable)
    assert classify(exc, waiter) is ErrorKind.TIMED_OUT


def test_serialization_failure_is_a_transient_conflict(connect):
    setup, a, b = connect(), connect(), connect()
    setup.execute("CREATE TABLE counter (id int PRIMARY KEY, n int)")
    setup.execute("INSERT INTO counter VALUES (1, 0)")
    a.autocommit = b.autocommit = False
    a.execute("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")
    b.execute("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")
    a.execute("SELECT n FROM counter WHERE id = 1").fetchone()
    b.execute("SELECT n FROM counter WHERE id = 1").fetchone()
    a.execute("UPDATE counter SET n = n + 1 WHERE id = 1")
    a.commit()
    exc = _raised(lambda: b.execute("UPDATE counter SET n = n + 1 WHERE id = 1"))
    assert isinstance(exc, psycopg.errors.SerializationFailure)
    assert exc.sqlstate == "40001"
    assert classify(exc, b) is ErrorKind.CONFLICT
    error = translate(exc, conn=b)
    assert isinstance(error, ops.Conflict) and error.transient and not error.unreachable
    b.rollback()
    assert b.execute("SELECT n FROM counter WHERE id = 1").fetchone() == (1,)


def test_deadlock_is_a_transient_conflict(connect):
    setup, observer, a, b = connect(), connect(), connect(), connect()
    setup.execute("CREATE TABLE pair (id int PRIMARY KEY)")
    setup.execute("INSERT INTO pair VALUES (1), (2)")
    a.autocommit = b.autocommit = False
    a.execute("SELECT * FROM pair WHERE id = 1 FOR UPDATE")
    b.execute("SELECT * FROM pair WHERE id = 2 FOR UPDATE")
    b_pid = b.info.backend_pid
    errors: dict[str, BaseException] = {}

    def lock_second() -> None:
        try:
            b.execute("SELECT * FROM pair WHERE id = 1 FOR UPDATE")
        except psycopg.Error as exc:
            errors["b"] = exc

    thread = threading.Thread(target=lock_second, daemon=True)
    thread.start()
    wait_until(
        lambda: observer.execute(
            "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s", (b_pid,)
        ).fetchone()[0],
        what="b waiting for a's lock",
    )
    try:
        a.execute("SELECT * FROM pair WHERE id = 2 FOR UPDATE")
    except psycopg.Error as exc:
        errors["a"] = exc
    thread.join(10)
    assert not thread.is_alive()
    # The server picks one of the two as the victim.
    (victim,) = errors.values()
    assert isinstance(victim, psycopg.errors.DeadlockDetected)
    assert victim.sqlstate == "40P01"
    assert classify(victim) is ErrorKind.CONFLICT
    assert isinstance(translate(victim), ops.Conflict)


def test_terminated_backend_is_connection_lost(connect):
    victim, admin = connect(), connect()
    admin.execute("SELECT pg_terminate_backend(%s)", (victim.info.backend_pid,))
    exc = _raised(lambda: victim.execute("SELECT 1"))
    assert classify(exc, victim) is ErrorKind.CONNECTION_LOST
    error = translate(exc, conn=victim)
    assert isinstance(error, ConnectionLost) and error.unreachable
    # A closed connection is lost too, whatever the next call raises.
    exc = _raised(lambda: victim.execute("SELECT 1"))
    assert isinstance(exc, psycopg.InterfaceError) or victim.broken
    assert classify(exc, victim) is ErrorKind.CONNECTION_LOST


def test_engine_refusal_bad_input_and_not_found(conn):
    refused = _raised(lambda: conn.execute("SELECT absurd.create_queue('')"))
    assert classify(refused, conn) is ErrorKind.REFUSED
    bad = _raised(lambda: conn.execute("SELECT 'nope'::jsonb"))
    assert classify(bad, conn) is ErrorKind.BAD_INPUT
    strategy = _raised(
        lambda: conn.execute(
            "DO $$ BEGIN RAISE EXCEPTION 'bad strategy' USING ERRCODE = 'AB003'; END $$"
        )
    )
    assert classify(strategy, conn) is ErrorKind.BAD_INPUT
    conn.execute("SET absurd.max_payload_bytes = 10")
    conn.execute("SELECT absurd.create_queue('big')")
    too_large = _raised(
        lambda: conn.execute("SELECT absurd.emit_event('big', 'e', '{\"blob\": \"xxxxxxxxxx\"}')")
    )
    assert too_large.sqlstate == "22001" and classify(too_large, conn) is ErrorKind.BAD_INPUT
    missing = _raised(lambda: conn.execute("SELECT * FROM absurd.t_no_such_queue"))
    assert classify(missing, conn) is ErrorKind.NOT_FOUND
    # None of these costs the connection.
    assert conn.execute("SELECT 1").fetchone() == (1,)


def test_translated_keeps_bugs_as_bugs():
    with pytest.raises(KeyError):
        with ops.translated():
            raise KeyError("a bug is not a refusal")
    with pytest.raises(ops.BadInput):
        with ops.translated():
            raise ValueError("bad value")
