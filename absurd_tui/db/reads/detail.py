"""One task in full: the read behind the detail screen, ``show`` and the transcript."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row

from ..models import CheckpointInfo, RunInfo, TaskDetail, WaitInfo
from ..tables import table
from .common import db_now, queue_names

CHECKPOINT_LIMIT = 2_000
"""Task detail loads at most this many checkpoints (a runaway loop can write more)."""


def task_detail(
    conn: psycopg.Connection,
    queue: str,
    task_id: uuid.UUID | str,
    *,
    checkpoint_limit: int | None = CHECKPOINT_LIMIT,
) -> TaskDetail | None:
    """Everything about one task, as one consistent snapshot: its row, runs,
    checkpoints in order and pending waits (None if there is no such task or queue).

    The statements run in one REPEATABLE READ READ ONLY transaction, so a worker
    committing a step between them cannot make the runs disagree with the task's state.
    On a connection already inside a transaction they join it (its isolation applies).
    ``checkpoint_limit=None`` loads every checkpoint (the agent transcript needs them all).
    """
    task_id = uuid.UUID(str(task_id))
    with _snapshot(conn):
        return _read_detail(conn, queue, task_id, checkpoint_limit)


@contextmanager
def _snapshot(conn: psycopg.Connection) -> Iterator[None]:
    if conn.info.transaction_status != TransactionStatus.IDLE:
        with conn.transaction():
            yield
        return
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield


def _read_detail(
    conn: psycopg.Connection, queue: str, task_id: uuid.UUID, limit: int | None
) -> TaskDetail | None:
    if queue not in queue_names(conn):
        return None
    read_at = db_now(conn)
    with conn.cursor(row_factory=dict_row) as cur:
        task = cur.execute(
            sql.SQL(
                "SELECT task_id, task_name, state, attempts, max_attempts, params, headers, "
                "retry_strategy, cancellation, idempotency_key, enqueue_at, first_started_at, "
                "cancelled_at, completed_payload, last_attempt_run FROM {} WHERE task_id = %s"
            ).format(table("t", queue)),
            (task_id,),
        ).fetchone()
        if task is None:
            return None
        runs = tuple(
            RunInfo(
                run_id=r["run_id"],
                attempt=r["attempt"],
                state=r["state"],
                claimed_by=r["claimed_by"],
                claim_expires_at=r["claim_expires_at"],
                available_at=r["available_at"],
                wake_event=r["wake_event"],
                created_at=r["created_at"],
                started_at=r["started_at"],
                completed_at=r["completed_at"],
                failed_at=r["failed_at"],
                result=r["result"],
                failure_reason=r["failure_reason"],
            )
            for r in cur.execute(
                sql.SQL(
                    "SELECT run_id, attempt, state, claimed_by, claim_expires_at, "
                    "nullif(available_at, 'infinity') AS available_at, "
                    "wake_event, created_at, started_at, completed_at, failed_at, result, "
                    "failure_reason FROM {} WHERE task_id = %s ORDER BY attempt, run_id"
                ).format(table("r", queue)),
                (task_id,),
            )
        )
        attempt_of = {run.run_id: run.attempt for run in runs}
        checkpoint_rows = cur.execute(
            sql.SQL(
                "SELECT checkpoint_name, state, status, owner_run_id, updated_at FROM {} "
                "WHERE task_id = %s ORDER BY updated_at, checkpoint_name LIMIT %s"
            ).format(table("c", queue)),
            (task_id, None if limit is None else limit + 1),
        ).fetchall()
        checkpoints = tuple(
            CheckpointInfo(
                name=c["checkpoint_name"],
                state=c["state"],
                status=c["status"],
                owner_run_id=c["owner_run_id"],
                owner_attempt=attempt_of.get(c["owner_run_id"]),
                updated_at=c["updated_at"],
            )
            for c in checkpoint_rows[:limit]
        )
        waits = tuple(
            WaitInfo(
                queue=queue,
                task_id=task_id,
                task_name=task["task_name"],
                run_id=w["run_id"],
                step_name=w["step_name"],
                event_name=w["event_name"],
                created_at=w["created_at"],
                timeout_at=w["timeout_at"],
            )
            for w in cur.execute(
                sql.SQL(
                    "SELECT run_id, step_name, event_name, created_at, timeout_at FROM {} "
                    "WHERE task_id = %s ORDER BY created_at, step_name"
                ).format(table("w", queue)),
                (task_id,),
            )
        )
    return TaskDetail(
        queue=queue,
        task_id=task["task_id"],
        task_name=task["task_name"],
        state=task["state"],
        attempts=task["attempts"],
        max_attempts=task["max_attempts"],
        params=task["params"],
        headers=task["headers"],
        retry_strategy=task["retry_strategy"],
        cancellation=task["cancellation"],
        idempotency_key=task["idempotency_key"],
        enqueue_at=task["enqueue_at"],
        first_started_at=task["first_started_at"],
        cancelled_at=task["cancelled_at"],
        result=task["completed_payload"],
        last_run_id=task["last_attempt_run"],
        runs=runs,
        checkpoints=checkpoints,
        checkpoints_truncated=limit is not None and len(checkpoint_rows) > limit,
        waits=waits,
        read_at=read_at,
    )
