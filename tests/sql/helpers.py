"""Small helpers for the black-box engine tests.

They call the `absurd.*` functions the way the official Python SDK does (JSON as text,
ids as UUID, integers as Python ints, so psycopg sends the same parameter types) and read
the per-queue tables directly, the way dashboards do. Per-queue table names are always
composed with sql.Identifier, because queue names may contain any character.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.datetime import TimestamptzLoader

Q = "jobs"
T0 = datetime(2031, 3, 4, 12, 0, 0, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# How direct table reads show the timestamp 'infinity' (a run waiting for an event with no
# timeout); Python's datetime cannot hold it.
INFINITY = datetime.max.replace(tzinfo=UTC)


class _InfinityTimestamptzLoader(TimestamptzLoader):
    def load(self, data):
        if bytes(data) == b"infinity":
            return INFINITY
        return super().load(data)


# --- time -----------------------------------------------------------------------------


def set_now(conn: psycopg.Connection, when: datetime | str | None) -> None:
    """Pin absurd.current_time() for this session; None (blank) restores the real clock."""
    value = "" if when is None else when if isinstance(when, str) else when.isoformat()
    conn.execute("SELECT set_config('absurd.fake_now', %s, false)", (value,))


class FakeClock:
    """One fake time shared by several sessions, moved forward explicitly by the test."""

    def __init__(self, *conns: psycopg.Connection, start: datetime = T0):
        self.now = start
        self._conns = list(conns)
        self._apply()

    def attach(self, conn: psycopg.Connection) -> psycopg.Connection:
        self._conns.append(conn)
        set_now(conn, self.now)
        return conn

    def advance(self, seconds: float) -> datetime:
        self.now = self.now + timedelta(seconds=seconds)
        self._apply()
        return self.now

    def set(self, when: datetime) -> datetime:
        self.now = when
        self._apply()
        return self.now

    def _apply(self) -> None:
        for conn in self._conns:
            set_now(conn, self.now)


# --- engine calls ---------------------------------------------------------------------


@dataclass(frozen=True)
class Spawned:
    task_id: UUID
    run_id: UUID
    attempt: int
    created: bool


def create_queue(conn: psycopg.Connection, q: str = Q) -> str:
    conn.execute("SELECT absurd.create_queue(%s)", (q,))
    return q


def spawn(
    conn: psycopg.Connection,
    q: str = Q,
    name: str = "task",
    params: Any = None,
    **options: Any,
) -> Spawned:
    row = conn.execute(
        "SELECT task_id, run_id, attempt, created FROM absurd.spawn_task(%s, %s, %s, %s)",
        (q, name, json.dumps(params), json.dumps(options)),
    ).fetchone()
    return Spawned(*row)


def claim(
    conn: psycopg.Connection,
    q: str = Q,
    worker: str = "worker-a",
    timeout: int | None = 30,
    qty: int | None = 1,
) -> list[dict]:
    cur = conn.cursor(row_factory=dict_row)
    return cur.execute(
        """SELECT run_id, task_id, attempt, task_name, params, retry_strategy,
                  max_attempts, headers, wake_event, event_payload
             FROM absurd.claim_task(%s, %s, %s, %s)""",
        (q, worker, timeout, qty),
    ).fetchall()


def claim_one(conn: psycopg.Connection, q: str = Q, **kw: Any) -> dict:
    rows = claim(conn, q, **kw)
    assert len(rows) == 1, f"expected exactly one claimed run, got {rows!r}"
    return rows[0]


def complete(conn: psycopg.Connection, run_id: UUID, result: Any = None, q: str = Q) -> None:
    conn.execute("SELECT absurd.complete_run(%s, %s, %s)", (q, run_id, json.dumps(result)))


def fail(
    conn: psycopg.Connection,
    run_id: UUID,
    reason: Any = None,
    retry_at: datetime | None = None,
    q: str = Q,
) -> None:
    if reason is None:
        reason = {"name": "RuntimeError", "message": "boom", "traceback": None}
    conn.execute(
        "SELECT absurd.fail_run(%s, %s, %s, %s)", (q, run_id, json.dumps(reason), retry_at)
    )


def schedule(conn: psycopg.Connection, run_id: UUID, wake_at: datetime, q: str = Q) -> None:
    conn.execute("SELECT absurd.schedule_run(%s, %s, %s)", (q, run_id, wake_at))


def set_checkpoint(
    conn: psycopg.Connection,
    task_id: UUID,
    step: str,
    state: Any,
    run_id: UUID,
    extend_by: int | None = None,
    q: str = Q,
) -> None:
    conn.execute(
        "SELECT absurd.set_task_checkpoint_state(%s, %s, %s, %s, %s, %s)",
        (q, task_id, step, json.dumps(state), run_id, extend_by),
    )


def get_checkpoint(
    conn: psycopg.Connection,
    task_id: UUID,
    step: str,
    q: str = Q,
    include_pending: bool | None = None,
) -> list[dict]:
    cur = conn.cursor(row_factory=dict_row)
    if include_pending is None:
        return cur.execute(
            """SELECT checkpoint_name, state, status, owner_run_id, updated_at
                 FROM absurd.get_task_checkpoint_state(%s, %s, %s)""",
            (q, task_id, step),
        ).fetchall()
    return cur.execute(
        """SELECT checkpoint_name, state, status, owner_run_id, updated_at
             FROM absurd.get_task_checkpoint_state(%s, %s, %s, %s)""",
        (q, task_id, step, include_pending),
    ).fetchall()


def get_checkpoints(
    conn: psycopg.Connection, task_id: UUID, run_id: UUID, q: str = Q
) -> list[dict]:
    cur = conn.cursor(row_factory=dict_row)
    return cur.execute(
        """SELECT checkpoint_name, state, status, owner_run_id, updated_at
             FROM absurd.get_task_checkpoint_states(%s, %s, %s)""",
        (q, task_id, run_id),
    ).fetchall()


def extend(conn: psycopg.Connection, run_id: UUID, seconds: int | None, q: str = Q) -> None:
    conn.execute("SELECT absurd.extend_claim(%s, %s, %s)", (q, run_id, seconds))


@dataclass(frozen=True)
class Awaited:
    should_suspend: bool
    payload: Any
    timed_out: bool


def await_event(
    conn: psycopg.Connection,
    task_id: UUID,
    run_id: UUID,
    event: str,
    step: str | None = None,
    timeout: int | None = None,
    q: str = Q,
) -> Awaited:
    row = conn.execute(
        """SELECT should_suspend, payload, timed_out
             FROM absurd.await_event(%s, %s, %s, %s, %s, %s)""",
        (q, task_id, run_id, step or f"$awaitEvent:{event}", event, timeout),
    ).fetchone()
    return Awaited(*row)


def emit(conn: psycopg.Connection, event: str, payload: Any = None, q: str = Q) -> None:
    conn.execute("SELECT absurd.emit_event(%s, %s, %s)", (q, event, json.dumps(payload)))


def cancel(conn: psycopg.Connection, task_id: UUID | str, q: str = Q) -> None:
    conn.execute("SELECT absurd.cancel_task(%s, %s)", (q, task_id))


def retry(conn: psycopg.Connection, task_id: UUID | str, q: str = Q, **options: Any) -> Spawned:
    row = conn.execute(
        "SELECT task_id, run_id, attempt, created FROM absurd.retry_task(%s, %s, %s)",
        (q, task_id, json.dumps(options)),
    ).fetchone()
    return Spawned(*row)


def task_result(conn: psycopg.Connection, task_id: UUID | str, q: str = Q) -> dict | None:
    cur = conn.cursor(row_factory=dict_row)
    return cur.execute(
        "SELECT task_id, state, result, failure_reason FROM absurd.get_task_result(%s, %s)",
        (q, task_id),
    ).fetchone()


# --- direct reads of the per-queue tables ----------------------------------------------


def table(prefix: str, q: str = Q) -> sql.Composed:
    return sql.SQL("absurd.{}").format(sql.Identifier(f"{prefix}_{q}"))


def select_rows(conn: psycopg.Connection, query: sql.Composable, params: tuple = ()) -> list[dict]:
    cur = conn.cursor(row_factory=dict_row)
    cur.adapters.register_loader("timestamptz", _InfinityTimestamptzLoader)
    return cur.execute(query, params).fetchall()


def task_row(conn: psycopg.Connection, task_id: UUID, q: str = Q) -> dict:
    rows = select_rows(
        conn, sql.SQL("SELECT * FROM {} WHERE task_id = %s").format(table("t", q)), (task_id,)
    )
    assert len(rows) == 1, f"task {task_id} has {len(rows)} rows"
    return rows[0]


def run_row(conn: psycopg.Connection, run_id: UUID, q: str = Q) -> dict:
    rows = select_rows(
        conn, sql.SQL("SELECT * FROM {} WHERE run_id = %s").format(table("r", q)), (run_id,)
    )
    assert len(rows) == 1, f"run {run_id} has {len(rows)} rows"
    return rows[0]


def runs_of(conn: psycopg.Connection, task_id: UUID, q: str = Q) -> list[dict]:
    return select_rows(
        conn,
        sql.SQL("SELECT * FROM {} WHERE task_id = %s ORDER BY attempt, run_id").format(
            table("r", q)
        ),
        (task_id,),
    )


def checkpoint_rows(conn: psycopg.Connection, task_id: UUID, q: str = Q) -> dict[str, dict]:
    rows = select_rows(
        conn, sql.SQL("SELECT * FROM {} WHERE task_id = %s").format(table("c", q)), (task_id,)
    )
    return {row["checkpoint_name"]: row for row in rows}


def wait_rows(conn: psycopg.Connection, q: str = Q, **where: Any) -> list[dict]:
    clauses = [sql.SQL("{} = %s").format(sql.Identifier(k)) for k in where]
    query = sql.SQL("SELECT * FROM {}").format(table("w", q))
    if clauses:
        query = query + sql.SQL(" WHERE ") + sql.SQL(" AND ").join(clauses)
    return select_rows(conn, query, tuple(where.values()))


def event_row(conn: psycopg.Connection, event: str, q: str = Q) -> dict | None:
    rows = select_rows(
        conn, sql.SQL("SELECT * FROM {} WHERE event_name = %s").format(table("e", q)), (event,)
    )
    return rows[0] if rows else None


def count(conn: psycopg.Connection, prefix: str, q: str = Q) -> int:
    return conn.execute(sql.SQL("SELECT count(*) FROM {}").format(table(prefix, q))).fetchone()[0]


def is_json_null(
    conn: psycopg.Connection, prefix: str, column: str, key: str, value: Any, q: str = Q
) -> bool:
    """True when the column holds JSON null (jsonb 'null'), as opposed to SQL NULL."""
    query = sql.SQL(
        "SELECT {col} IS NOT NULL AND jsonb_typeof({col}) = 'null' FROM {tbl} WHERE {key} = %s"
    ).format(col=sql.Identifier(column), tbl=table(prefix, q), key=sql.Identifier(key))
    return conn.execute(query, (value,)).fetchone()[0]


def force_update(
    conn: psycopg.Connection, prefix: str, key: str, value: Any, q: str = Q, **changes: Any
) -> None:
    """Write table columns directly, to reach a state the public functions cannot produce."""
    sets = sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(k)) for k in changes)
    conn.execute(
        sql.SQL("UPDATE {} SET {} WHERE {} = %s").format(
            table(prefix, q), sets, sql.Identifier(key)
        ),
        (*changes.values(), value),
    )


# --- errors ---------------------------------------------------------------------------


@contextmanager
def raises_db(sqlstate: str, message: str | None = None) -> Iterator[pytest.ExceptionInfo]:
    """Expect a database error with this SQLSTATE and (if given) this text in its message."""
    with pytest.raises(psycopg.Error) as info:
        yield info
    err = info.value
    assert err.sqlstate == sqlstate, f"SQLSTATE {err.sqlstate!r}, expected {sqlstate!r}: {err}"
    if message is not None:
        primary = err.diag.message_primary or ""
        assert message in primary, f"message {primary!r} does not contain {message!r}"


# --- threads --------------------------------------------------------------------------


class Result:
    """What a background call returned or raised."""

    def __init__(self) -> None:
        self.value: Any = None
        self.error: BaseException | None = None
        self.done = threading.Event()


def in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, Result]:
    result = Result()

    def target() -> None:
        try:
            result.value = fn()
        except BaseException as exc:  # handed to the test thread, which asserts on it
            result.error = exc
        finally:
            result.done.set()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, result


def backend_waiting_on_lock(observer: psycopg.Connection, pid: int) -> bool:
    """True once the backend `pid` is blocked waiting for a lock."""
    row = observer.execute(
        "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)
    ).fetchone()
    return bool(row) and row[0] == "Lock"
