"""Task lists: one page of a filter's tasks, newest first, and the count of matches.

A queue may hold a million tasks and the console refreshes every second, so lists
use keyset pagination on the primary key (``ORDER BY task_id DESC``: ids are UUIDv7,
so this is newest first) and fetch only one page; matches of a name or id search are
counted with a capped count ("10,000+").
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from ..ids import ID_ONLY_DIGITS, id_bounds
from ..models import ZERO, Count, QueueSummary, TaskFilter, TaskPage, TaskRef, TaskRow
from ..tables import table
from .common import COUNT_CAP, LIVE_RUNS, capped_count, queues_named
from .queues import queue_summary

EVERY_TASK = TaskFilter()

# Runs of a task state that an index lists, to find such tasks without walking the
# task table: r_<q>_sai (pending, sleeping), r_<q>_cei (running with a lease),
# r_<q>_fai (failed; upstream's r_<q>_sai on (state, available_at) serves all four).
_RUNS_IN_STATE = {**LIVE_RUNS, "failed": "state = 'failed'"}


def _via_runs(state: str | None, summary: QueueSummary | None) -> bool:
    """Whether to find tasks of ``state`` through their runs' index.

    Walking the task table newest first and filtering on state reads about
    limit / share rows, which is fast while the state is common (most tasks completed)
    and slow when it is rare (a few failed tasks among a million): then the runs'
    index, which holds only that state, is the way in.
    """
    if state not in _RUNS_IN_STATE:
        return False
    if summary is None:
        return state in LIVE_RUNS
    count = summary.count(state)
    return not count.capped and count.value <= COUNT_CAP


def _search_parts(flt: TaskFilter) -> list[str | None]:
    """A search is an id prefix (a range on the primary key) or a name prefix. Each
    is queried on its own so the id range keeps its index (an OR would lose it)."""
    if not flt.search:
        return [None]
    text = flt.search.strip()
    if id_bounds(text) is None:
        return ["name"]
    if len(text.replace("-", "")) >= ID_ONLY_DIGITS:
        # Eight hex digits or more is an id: a name prefix search would read the
        # whole table for a name that matches nothing.
        return ["id"]
    return ["name", "id"]


def _task_where(
    queue: str,
    flt: TaskFilter,
    after: uuid.UUID | None,
    *,
    via_runs: bool = False,
    search_part: str | None = None,
) -> tuple[sql.Composable, list[Any]]:
    clauses: list[sql.Composable] = []
    params: list[Any] = []
    if flt.state:
        clauses.append(sql.SQL("t.state = %s"))
        params.append(flt.state)
        if via_runs:
            clauses.append(
                sql.SQL(
                    "t.task_id IN (SELECT r.task_id FROM {} AS r WHERE r."
                    + _RUNS_IN_STATE[flt.state]
                    + ")"
                ).format(table("r", queue))
            )
    if flt.name:
        clauses.append(sql.SQL("t.task_name LIKE %s"))
        params.append(_like_prefix(flt.name))
    if flt.search and search_part == "name":
        clauses.append(sql.SQL("t.task_name LIKE %s"))
        params.append(_like_prefix(flt.search.strip()))
    elif flt.search and search_part == "id":
        clauses.append(sql.SQL("t.task_id BETWEEN %s AND %s"))
        params.extend(id_bounds(flt.search.strip()) or ())
    if after is not None:
        clauses.append(sql.SQL("t.task_id < %s"))
        params.append(after)
    if not clauses:
        return sql.SQL("TRUE"), params
    return sql.SQL(" AND ").join(clauses), params


def _like_prefix(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


_TASK_ROW_SQL = """
SELECT t.task_id, t.task_name, t.state, t.attempts, t.max_attempts, t.enqueue_at,
       t.cancelled_at, r.claimed_by, r.wake_event,
       nullif(r.available_at, 'infinity') AS available_at,
       greatest(t.enqueue_at, r.created_at, r.started_at, r.completed_at, r.failed_at,
                t.cancelled_at, cp.updated_at) AS updated_at,
       cp.checkpoint_name
FROM (
    SELECT * FROM {tasks} AS t WHERE {where} ORDER BY t.task_id DESC LIMIT %s
) AS t
LEFT JOIN {runs} AS r ON r.run_id = t.last_attempt_run
LEFT JOIN LATERAL (
    SELECT c.checkpoint_name, c.updated_at FROM {checkpoints} AS c
    WHERE c.task_id = t.task_id
    ORDER BY c.updated_at DESC, c.checkpoint_name DESC
    LIMIT 1
) AS cp ON TRUE
ORDER BY t.task_id DESC
"""


def _fetch_task_rows(
    conn: psycopg.Connection,
    queue: str,
    flt: TaskFilter,
    limit: int,
    after: uuid.UUID | None,
    summary: QueueSummary | None,
) -> list[TaskRow]:
    rows: dict[uuid.UUID, TaskRow] = {}
    for part in _search_parts(flt):
        for row in _fetch_part(conn, queue, flt, limit, after, _via_runs(flt.state, summary), part):
            rows[row.task_id] = row
    return list(rows.values())


def _fetch_part(
    conn: psycopg.Connection,
    queue: str,
    flt: TaskFilter,
    limit: int,
    after: uuid.UUID | None,
    via_runs: bool,
    search_part: str | None,
) -> list[TaskRow]:
    where, params = _task_where(queue, flt, after, via_runs=via_runs, search_part=search_part)
    stmt = sql.SQL(_TASK_ROW_SQL).format(
        tasks=table("t", queue),
        runs=table("r", queue),
        checkpoints=table("c", queue),
        where=where,
    )
    rows = []
    with conn.cursor(row_factory=dict_row) as cur:
        for rec in cur.execute(stmt, [*params, limit]):
            rows.append(
                TaskRow(
                    queue=queue,
                    task_id=rec["task_id"],
                    task_name=rec["task_name"],
                    state=rec["state"],
                    attempts=rec["attempts"],
                    max_attempts=rec["max_attempts"],
                    enqueue_at=rec["enqueue_at"],
                    step=rec["checkpoint_name"],
                    updated_at=rec["updated_at"],
                    worker=rec["claimed_by"],
                    wake_event=rec["wake_event"],
                    available_at=rec["available_at"],
                )
            )
    return rows


def count_tasks(
    conn: psycopg.Connection,
    flt: TaskFilter,
    summaries: Sequence[QueueSummary] | None = None,
) -> Count:
    """How many tasks match ``flt``, capped or estimated so it never scans a big table.

    With no name or search filter the per-state queue counts already answer it (pass
    ``summaries`` when you have them, to spare the queries).
    """
    if not flt.name and not flt.search:
        if summaries is None:
            summaries = [queue_summary(conn, q) for q in queues_named(conn, flt.queue)]
        total = ZERO
        for summary in summaries:
            if flt.queue and summary.queue != flt.queue:
                continue
            total = total + (summary.count(flt.state) if flt.state else summary.total)
        return total
    by_queue = {summary.queue: summary for summary in summaries or ()}
    total = ZERO
    for queue in queues_named(conn, flt.queue):
        via_runs = _via_runs(flt.state, by_queue.get(queue))
        for part in _search_parts(flt):
            if total.capped:
                break
            where, params = _task_where(queue, flt, None, via_runs=via_runs, search_part=part)
            total = total + capped_count(
                conn,
                sql.SQL("SELECT 1 FROM {} AS t WHERE {}").format(table("t", queue), where),
                params,
            )
    if total.value > COUNT_CAP:
        return Count(COUNT_CAP, capped=True)
    return total


def list_tasks(
    conn: psycopg.Connection,
    flt: TaskFilter = EVERY_TASK,
    limit: int = 100,
    after: uuid.UUID | None = None,
    *,
    count: bool = True,
    summaries: Sequence[QueueSummary] | None = None,
) -> TaskPage:
    """One page of tasks matching ``flt``, newest first, older than ``after``.

    Across several queues each queue contributes its newest ``limit`` rows and the
    merge keeps the newest overall, so the page is exact. ``count=False`` skips the
    match count (it is then ZERO) for callers that refresh it less often.
    """
    by_queue = {summary.queue: summary for summary in summaries or ()}
    rows: list[TaskRow] = []
    for queue in queues_named(conn, flt.queue):
        rows.extend(_fetch_task_rows(conn, queue, flt, limit + 1, after, by_queue.get(queue)))
    rows.sort(key=lambda r: r.task_id, reverse=True)
    more = len(rows) > limit
    rows = rows[:limit]
    matches = count_tasks(conn, flt, summaries) if count else ZERO
    return TaskPage(
        rows=tuple(rows),
        matches=matches,
        next_after=rows[-1].task_id if more and rows else None,
    )


def list_task_ids(conn: psycopg.Connection, flt: TaskFilter, limit: int = 100_000) -> list[TaskRef]:
    """Every task matching ``flt`` (up to ``limit``), newest first, for bulk commands."""
    refs: dict[uuid.UUID, TaskRef] = {}
    for queue in queues_named(conn, flt.queue):
        for part in _search_parts(flt):
            where, params = _task_where(
                queue, flt, None, via_runs=flt.state in LIVE_RUNS, search_part=part
            )
            stmt = sql.SQL(
                "SELECT t.task_id, t.task_name, t.state FROM {} AS t WHERE {} ORDER BY t.task_id DESC LIMIT %s"
            ).format(table("t", queue), where)
            for task_id, name, state in conn.execute(stmt, [*params, limit]):
                refs.setdefault(task_id, TaskRef(queue, task_id, name, state))
    return sorted(refs.values(), key=lambda ref: ref.task_id, reverse=True)[:limit]
