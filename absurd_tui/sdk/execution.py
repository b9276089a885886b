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
import logging
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

log = logging.getLogger(__name__)

UNKNOWN_TASK_DEFER_BASE_SECONDS = 15
UNKNOWN_TASK_DEFER_JITTER_SECONDS = 15

CLAIM_SQL = """
    SELECT run_id, task_id, attempt, task_name, params, retry_strategy, max_attempts,
           headers, wake_event, event_payload
    FROM absurd.claim_task(%s, %s, %s, %s)
"""
# The same claim with each run's replay cache (our engine's fast path).
CLAIM_RUNS_SQL = """
    SELECT run_id, task_id, attempt, task_name, params, retry_strategy, max_attempts,
           headers, wake_event, event_payload, checkpoints
    FROM absurd.claim_runs(%s, %s, %s, %s)
"""
COMPLETE_AND_CLAIM_SQL = """
    SELECT run_id, task_id, attempt, task_name, params, retry_strategy, max_attempts,
           headers, wake_event, event_payload, checkpoints
    FROM absurd.complete_run_and_claim(%s, %s, %s, %s, %s, %s, %s)
"""


class Outcome(enum.Enum):
    COMPLETED = "completed"
    FAILED = "failed"  # recorded with fail_run; the engine decides on a retry
    SUSPENDED = "suspended"  # sleeping or waiting for an event
    CANCELLED = "cancelled"
    LOST = "lost"  # the run had already failed (lease taken over); stopped quietly
    ABANDONED = "abandoned"  # the pool stopped; the run was handed back (or left to its lease)
    DEFERRED = "deferred"  # no handler registered here; retried later, not failed
    MISCONFIGURED = "misconfigured"  # registered for another queue; failed
    DISCONNECTED = "disconnected"  # the connection broke; the run may still be ours


@dataclass(frozen=True)
class ExecutionResult:
    outcome: Outcome
    error: BaseException | None = None
    result: Any = None
    claimed: tuple[ClaimedTask, ...] = ()
    """Runs claimed together with this run's completion (see ``NextClaim``)."""


@dataclass(frozen=True)
class NextClaim:
    """Claim this many runs of ``queue_name`` in the completion's transaction: one round
    trip for a task's end and the next one's start."""

    queue_name: str
    worker_id: str
    claim_timeout: int
    qty: int = 1


NextClaimSource = Callable[[], NextClaim | None]
"""Asked at completion time whether (and where) to claim the next run."""


def claim_tasks(
    conn: psycopg.Connection,
    queue_name: str,
    worker_id: str,
    claim_timeout: int,
    qty: int = 1,
    features: SchemaFeatures | None = None,
) -> list[ClaimedTask]:
    """Claim up to ``qty`` runs; with our engine's fast paths each brings its checkpoints."""
    query = CLAIM_RUNS_SQL if features is not None and features.fast_paths else CLAIM_SQL
    rows = (
        conn.cursor(row_factory=dict_row)
        .execute(query, (queue_name, worker_id, claim_timeout, qty))
        .fetchall()
    )
    return [ClaimedTask.from_row(queue_name, row) for row in rows]


def unknown_task_delay(run_id: str) -> int:
    """Seconds to defer a run whose task name nobody here knows (upstream's formula)."""
    jitter = sum(ord(ch) for ch in str(run_id)) % (UNKNOWN_TASK_DEFER_JITTER_SECONDS + 1)
    return UNKNOWN_TASK_DEFER_BASE_SECONDS + jitter


def _connection_lost(conn: psycopg.Connection) -> bool:
    return conn.closed or conn.broken


def _complete(
    conn: psycopg.Connection,
    claimed: ClaimedTask,
    text: str,
    features: SchemaFeatures,
    next_claim_source: NextClaimSource | None,
) -> tuple[ClaimedTask, ...]:
    next_claim = (
        next_claim_source() if next_claim_source is not None and features.fast_paths else None
    )
    if next_claim is not None:
        try:
            with task_state_errors():
                rows = (
                    conn.cursor(row_factory=dict_row)
                    .execute(
                        COMPLETE_AND_CLAIM_SQL,
                        (
                            claimed.queue_name,
                            claimed.run_id,
                            text,
                            next_claim.worker_id,
                            next_claim.claim_timeout,
                            next_claim.qty,
                            next_claim.queue_name,
                        ),
                    )
                    .fetchall()
                )
            return tuple(ClaimedTask.from_row(next_claim.queue_name, row) for row in rows)
        except psycopg.Error:
            # The completion and the next claim are one statement: a claim that fails
            # (a deadlock, a timeout in its sweep) rolls the completion back too. The
            # handler did succeed, so record that alone rather than fail the task.
            if _connection_lost(conn):
                raise
            log.debug("completing with the next claim failed; completing alone", exc_info=True)
    with task_state_errors():
        conn.execute(
            "SELECT absurd.complete_run(%s, %s, %s)",
            (claimed.queue_name, claimed.run_id, text),
        )
    return ()


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
    next_claim: NextClaimSource | None = None,
) -> ExecutionResult:
    """Run one claimed task to its next resting point and record the outcome.

    With ``next_claim`` (and our engine), a completion also claims the next runs, which
    come back in ``ExecutionResult.claimed``. Raises only for database errors that are
    neither a lost connection nor the engine's stop signals (for example a failing
    fail_run): those are invariants.
    """
    control = control if control is not None else RunControl()
    try:
        return _execute(
            conn,
            claimed,
            registry,
            claim_timeout,
            features,
            worker_id,
            control,
            observer,
            wrap,
            next_claim,
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
    control: RunControl,
    observer: StepObserver | None,
    wrap: Callable[[TaskContext, Callable[[], Any]], Any] | None,
    next_claim: NextClaimSource | None,
) -> ExecutionResult:
    registration = registry.get(claimed.task_name)
    if registration is None:
        try:
            control.check()
            conn.execute(
                "SELECT absurd.schedule_run(%s, %s, absurd.current_time()"
                " + make_interval(secs => %s::double precision))",
                (claimed.queue_name, claimed.run_id, unknown_task_delay(claimed.run_id)),
            )
        except TaskAbandoned as stopped:
            return ExecutionResult(Outcome.ABANDONED, stopped)
        except Exception as defer_err:
            if _connection_lost(conn):
                raise
            return _record_failure(conn, claimed, defer_err, control)
        return ExecutionResult(Outcome.DEFERRED)

    if registration.queue != claimed.queue_name:
        err = RuntimeError(
            f'Misconfigured task (queue mismatch): "{claimed.task_name}" is registered for '
            f'queue "{registration.queue}" but was spawned on "{claimed.queue_name}"'
        )
        result = _record_failure(conn, claimed, err, control)
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
        with control.guard():
            more = _complete(conn, claimed, text, features, next_claim)
        return ExecutionResult(Outcome.COMPLETED, result=value, claimed=more)
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
        return _record_failure(conn, claimed, err, control)
    finally:
        current_context_var.reset(token)


def _record_failure(
    conn: psycopg.Connection, claimed: ClaimedTask, err: BaseException, control: RunControl
) -> ExecutionResult:
    try:
        # A run the pool handed back is no longer this execution's to fail.
        with control.guard():
            fail_run(conn, claimed, err)
    except TaskAbandoned as stopped:
        return ExecutionResult(Outcome.ABANDONED, stopped)
    except CancelledTask:
        return ExecutionResult(Outcome.CANCELLED, err)
    except FailedTask:
        return ExecutionResult(Outcome.LOST, err)
    return ExecutionResult(Outcome.FAILED, err)
