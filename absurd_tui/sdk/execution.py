"""Claiming runs and executing one claimed run: shared by the worker pool and
``Absurd.work_batch``.

The sequence follows the official SDK (contract section 6): defer unknown task names,
refuse a registration on the wrong queue, preload checkpoints, call the handler,
complete or fail the run. Additions: a lost database connection is reported as such
instead of being recorded as a task failure (the run is still ours and can be resumed
after reconnecting), results are checked to be JSON before completing, and failures
carry the exception's qualified type.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row

from . import jsonvalue
from .context import (
    ClaimedTask,
    RunControl,
    SchemaFeatures,
    StepObserver,
    TaskContext,
    current_context_var,
)
from .errors import (
    CancelledTask,
    FailedTask,
    InvalidStepResult,
    SuspendTask,
    TaskAbandoned,
    task_state_errors,
)
from .failures import record_failure
from .registry import TaskRegistry

UNKNOWN_TASK_DEFER_BASE_SECONDS = 15
UNKNOWN_TASK_DEFER_JITTER_SECONDS = 15

CLAIM_SQL = """
    SELECT run_id, task_id, attempt, task_name, params, retry_strategy, max_attempts,
           headers, wake_event, event_payload
    FROM absurd.claim_task(%s, %s, %s, %s)
"""


class Outcome(enum.Enum):
    COMPLETED = "completed"
    FAILED = "failed"  # recorded with fail_run; the engine decides on a retry
    SUSPENDED = "suspended"  # sleeping or waiting for an event
    CANCELLED = "cancelled"
    LOST = "lost"  # the run had already failed (lease taken over); stopped quietly
    ABANDONED = "abandoned"  # the pool stopped; left to lease expiry
    DEFERRED = "deferred"  # no handler registered here; retried later, not failed
    MISCONFIGURED = "misconfigured"  # registered for another queue; failed
    DISCONNECTED = "disconnected"  # the connection broke; the run may still be ours


@dataclass(frozen=True)
class ExecutionResult:
    outcome: Outcome
    error: BaseException | None = None
    result: Any = None


def claim_tasks(
    conn: psycopg.Connection,
    queue_name: str,
    worker_id: str,
    claim_timeout: int,
    qty: int = 1,
) -> list[ClaimedTask]:
    rows = (
        conn.cursor(row_factory=dict_row)
        .execute(CLAIM_SQL, (queue_name, worker_id, claim_timeout, qty))
        .fetchall()
    )
    return [ClaimedTask.from_row(queue_name, row) for row in rows]


def unknown_task_delay(run_id: str) -> int:
    """Seconds to defer a run whose task name nobody here knows (upstream's formula)."""
    jitter = sum(ord(ch) for ch in str(run_id)) % (UNKNOWN_TASK_DEFER_JITTER_SECONDS + 1)
    return UNKNOWN_TASK_DEFER_BASE_SECONDS + jitter


def _connection_lost(conn: psycopg.Connection) -> bool:
    return conn.closed or conn.broken


def fail_run(conn: psycopg.Connection, claimed: ClaimedTask, err: BaseException) -> None:
    """Record ``err`` as this run's failure; AB001/AB002 become CancelledTask/FailedTask."""
    record_failure(conn, claimed.queue_name, claimed.run_id, err)


def execute_task(
    conn: psycopg.Connection,
    claimed: ClaimedTask,
    registry: TaskRegistry,
    *,
    claim_timeout: int,
    features: SchemaFeatures,
    worker_id: str | None = None,
    control: RunControl | None = None,
    observer: StepObserver | None = None,
    wrap: Callable[[TaskContext, Callable[[], Any]], Any] | None = None,
) -> ExecutionResult:
    """Run one claimed task to its next resting point and record the outcome.

    Raises only for database errors that are neither a lost connection nor the
    engine's stop signals (for example a failing fail_run): those are invariants.
    """
    try:
        return _execute(
            conn, claimed, registry, claim_timeout, features, worker_id, control, observer, wrap
        )
    except Exception as err:
        if _connection_lost(conn):
            return ExecutionResult(Outcome.DISCONNECTED, err)
        raise


def _execute(
    conn: psycopg.Connection,
    claimed: ClaimedTask,
    registry: TaskRegistry,
    claim_timeout: int,
    features: SchemaFeatures,
    worker_id: str | None,
    control: RunControl | None,
    observer: StepObserver | None,
    wrap: Callable[[TaskContext, Callable[[], Any]], Any] | None,
) -> ExecutionResult:
    registration = registry.get(claimed.task_name)
    if registration is None:
        try:
            conn.execute(
                "SELECT absurd.schedule_run(%s, %s, absurd.current_time()"
                " + make_interval(secs => %s::double precision))",
                (claimed.queue_name, claimed.run_id, unknown_task_delay(claimed.run_id)),
            )
        except Exception as defer_err:
            if _connection_lost(conn):
                raise
            return _record_failure(conn, claimed, defer_err)
        return ExecutionResult(Outcome.DEFERRED)

    if registration.queue != claimed.queue_name:
        err = RuntimeError(
            f'Misconfigured task (queue mismatch): "{claimed.task_name}" is registered for '
            f'queue "{registration.queue}" but was spawned on "{claimed.queue_name}"'
        )
        result = _record_failure(conn, claimed, err)
        return ExecutionResult(
            Outcome.MISCONFIGURED if result.outcome is Outcome.FAILED else result.outcome, err
        )

    ctx = TaskContext._create(
        conn,
        claimed,
        claim_timeout=claim_timeout,
        features=features,
        worker_id=worker_id,
        control=control,
        observer=observer,
    )
    token = current_context_var.set(ctx)
    try:
        if wrap is not None:
            value = wrap(ctx, lambda: registration.handler(claimed.params, ctx))
        else:
            value = registration.handler(claimed.params, ctx)
        text = jsonvalue.dumps(
            value,
            path="result",
            error=InvalidStepResult,
            context=f'Task "{claimed.task_name}" returned a value that cannot be stored',
        )
        if control is not None:
            control.check()
        with task_state_errors():
            conn.execute(
                "SELECT absurd.complete_run(%s, %s, %s)",
                (claimed.queue_name, claimed.run_id, text),
            )
        return ExecutionResult(Outcome.COMPLETED, result=value)
    except SuspendTask:
        return ExecutionResult(Outcome.SUSPENDED)
    except TaskAbandoned as err:
        return ExecutionResult(Outcome.ABANDONED, err)
    except CancelledTask as err:
        return ExecutionResult(Outcome.CANCELLED, err)
    except FailedTask as err:
        return ExecutionResult(Outcome.LOST, err)
    except (Exception, SystemExit) as err:
        # SystemExit too: sys.exit() in a handler ends that task, not the worker thread.
        if _connection_lost(conn):
            raise
        return _record_failure(conn, claimed, err)
    finally:
        current_context_var.reset(token)


def _record_failure(
    conn: psycopg.Connection, claimed: ClaimedTask, err: BaseException
) -> ExecutionResult:
    try:
        fail_run(conn, claimed, err)
    except CancelledTask:
        return ExecutionResult(Outcome.CANCELLED, err)
    except FailedTask:
        return ExecutionResult(Outcome.LOST, err)
    return ExecutionResult(Outcome.FAILED, err)
