"""Bulk retry and cancel: plan (list what would be touched), confirm, then run.

``plan_bulk`` lists the tasks matching a filter in the states the operation applies
to (``policy.bulk_states``); ``run_bulk`` carries the plan out task by task with the
same ``retry``/``cancel`` as a single command, so a task that moved on since it was
listed is skipped with its outcome's reason, never forced.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import psycopg

from ..db import ids
from ..db.models import TaskFilter, TaskRef
from ..db.reads import list_task_ids
from . import policy
from .commands import cancel, retry
from .errors import OpsError, translated
from .outcomes import BulkPlan, BulkResult, Cancelled, Retried
from .policy import BulkOperation

BULK_LIMIT = 100_000
"""A plan holds at most this many tasks; running the operation again takes the rest."""
MAX_REPORTED = 5
"""Skipped tasks named in the result (the count covers them all)."""

Progress = Callable[[int, int], None]
"""Called as ``progress(processed, total)`` after each task, for a progress display."""


def plan_bulk(
    conn: psycopg.Connection,
    operation: BulkOperation,
    flt: TaskFilter,
    *,
    limit: int = BULK_LIMIT,
) -> BulkPlan:
    """The tasks ``operation`` would touch among those matching ``flt``, newest first."""
    tasks: list[TaskRef] = []
    with translated(conn):
        for state in policy.bulk_states(operation, flt.state):
            narrowed = replace(flt, state=state)
            tasks.extend(list_task_ids(conn, narrowed, limit + 1 - len(tasks)))
            if len(tasks) > limit:
                break
    return BulkPlan(operation, flt, tuple(tasks[:limit]), len(tasks) > limit, limit)


def run_bulk(
    conn: psycopg.Connection,
    plan: BulkPlan,
    *,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> BulkResult:
    """Apply ``plan`` task by task.

    A task whose outcome is not ok (it finished, or is no longer failed) or that the
    engine refuses is skipped. A lost connection stops the run: raised as
    ``ConnectionLost`` if nothing was done yet (so "nothing changed" holds), else
    reported in ``BulkResult.stopped``. ``should_stop`` returning True stops it too.
    """
    done = skipped = 0
    errors: list[str] = []
    total = len(plan.tasks)
    for processed, ref in enumerate(plan.tasks, start=1):
        if should_stop is not None and should_stop():
            return BulkResult(plan, done, skipped, tuple(errors), stopped="stopped on request")
        try:
            outcome: Cancelled | Retried = (
                cancel(conn, ref) if plan.operation == "cancel" else retry(conn, ref)
            )
        except OpsError as exc:
            if exc.unreachable:
                if done == 0 and skipped == 0:
                    raise
                return BulkResult(plan, done, skipped, tuple(errors), stopped=str(exc))
            skipped += 1
            _note(errors, ref, str(exc))
        else:
            if outcome.ok:
                done += 1
            else:
                skipped += 1
                _note(errors, ref, outcome.message)
        if progress is not None:
            progress(processed, total)
    return BulkResult(plan, done, skipped, tuple(errors))


def _note(errors: list[str], ref: TaskRef, why: str) -> None:
    if len(errors) < MAX_REPORTED:
        errors.append(f"{ids.short_id(ref.task_id)}: {why}")


__all__ = ["BULK_LIMIT", "Progress", "plan_bulk", "run_bulk"]
