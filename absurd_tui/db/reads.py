"""Read models and the read queries the TUI and the CLI share.

Everything here is a plain read of the contract's tables (absurd.queues and the
per-queue t_/r_/c_/e_/w_ tables, columns listed in the contract's sections 2 and 7),
so it works the same against upstream Absurd's schema and ours. No function here
writes.

Scale is the point of most of the choices below. A queue may hold a million tasks and
the TUI refreshes every second, so:

* Task lists use keyset pagination on the primary key (``ORDER BY task_id DESC``:
  ids are UUIDv7, so this is newest first) and fetch only one page.
* Counts are never a scan of a whole table. Live tasks (pending, running, sleeping)
  mirror exactly one live run each, so they are counted on the run table's
  ``(state, available_at)`` index (``r_<q>_sai``), capped. Terminal tasks are the
  bulk of a big queue; they are counted exactly only while the table is small and
  otherwise estimated by the planner (``EXPLAIN``), which is free and uses the table's
  statistics. Estimated figures are flagged so the UI can say "~1.2M".
* Matches of a name or id search are counted with a capped count ("10,000+").
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from .errors import DatabaseError

STATES = ("pending", "running", "sleeping", "completed", "failed", "cancelled")
LIVE_STATES = ("pending", "running", "sleeping")
TERMINAL_STATES = ("completed", "failed", "cancelled")

COUNT_CAP = 10_000
"""Counts stop at this many rows; the UI shows "10,000+" past it."""
CHECKPOINT_LIMIT = 2_000
FILE_CHECKPOINT_PREFIX = "$file:"
"""Checkpoints holding file contents for a task (the agent's sandbox): not steps, so
reads of a task's checkpoints leave them out (they can be large)."""
"""Task detail loads at most this many checkpoints (a runaway loop can write more)."""
PREVIEW_CHARS = 120
SHORT_ID_DIGITS = 12
ID_ONLY_DIGITS = 8
"""A search of this many hex digits (or more) is taken as an id prefix only."""
MIN_SUFFIX_DIGITS = 6
"""A search term this long may also match the tail of an id (what tables show)."""


# --------------------------------------------------------------------------- models


@dataclass(frozen=True)
class Count:
    """A row count that may be a lower bound ("10,000+") or an estimate ("~1.2M")."""

    value: int
    capped: bool = False
    """True when counting stopped at the cap: the real number is larger."""
    estimated: bool = False
    """True when the figure comes from planner statistics, not a count."""

    def __add__(self, other: Count) -> Count:
        return Count(
            self.value + other.value,
            capped=self.capped or other.capped,
            estimated=self.estimated or other.estimated,
        )

    def label(self) -> str:
        if self.capped:
            return f"{self.value:,}+"
        if self.estimated:
            return "~" + _compact(self.value)
        return f"{self.value:,}"


ZERO = Count(0)


def _compact(n: int) -> str:
    if n < 10_000:
        return f"{n:,}"
    if n < 1_000_000:
        return f"{n / 1000:.0f}k"
    return f"{n / 1_000_000:.1f}M"


@dataclass(frozen=True)
class QueueSummary:
    queue: str
    created_at: datetime | None
    counts: tuple[tuple[str, Count], ...]
    """(state, count) for each of STATES, in that order."""
    claimable: Count
    """Runs that a worker could claim right now (available_at <= now)."""
    oldest_claimable_at: datetime | None
    """available_at of the run waiting longest to be claimed: the queue's lag."""

    def count(self, state: str) -> Count:
        return dict(self.counts)[state]

    @property
    def total(self) -> Count:
        total = ZERO
        for _, count in self.counts:
            total = total + count
        return total


@dataclass(frozen=True)
class TaskFilter:
    queue: str | None = None
    """None means every queue."""
    state: str | None = None
    name: str | None = None
    """Task name prefix."""
    search: str | None = None
    """Id prefix (hex, dashes optional) or task name prefix."""

    def describe(self) -> str:
        parts = [f"queue {self.queue}" if self.queue else "all queues"]
        if self.state:
            parts.append(f"state {self.state}")
        if self.name:
            parts.append(f"name {self.name}*")
        if self.search:
            parts.append(f"matching {self.search}")
        return ", ".join(parts)


@dataclass(frozen=True)
class TaskRow:
    queue: str
    task_id: uuid.UUID
    task_name: str
    state: str
    attempts: int
    max_attempts: int | None
    enqueue_at: datetime
    step: str | None
    """Name of the most recently written checkpoint, e.g. ``iteration#3``."""
    updated_at: datetime
    """Latest of spawn, claim, completion, failure, cancellation and checkpoint times."""
    worker: str | None
    """claimed_by of the newest run (kept after it fails or expires)."""
    wake_event: str | None
    available_at: datetime | None
    """When the newest run becomes claimable; None while it waits for an event with no
    timeout (stored as 'infinity', which Python datetimes cannot hold)."""

    @property
    def key(self) -> str:
        return f"{self.queue}/{self.task_id}"


@dataclass(frozen=True)
class TaskPage:
    rows: tuple[TaskRow, ...]
    matches: Count
    """How many tasks match the filter (whole result, not this page)."""
    next_after: uuid.UUID | None
    """Pass as ``after`` to get the next (older) page; None when this is the last."""


@dataclass(frozen=True)
class RunInfo:
    run_id: uuid.UUID
    attempt: int
    state: str
    claimed_by: str | None
    claim_expires_at: datetime | None
    available_at: datetime | None
    wake_event: str | None
    created_at: datetime | None
    started_at: datetime | None
    completed_at: datetime | None
    failed_at: datetime | None
    result: Any
    failure_reason: Any

    @property
    def ended_at(self) -> datetime | None:
        return self.completed_at or self.failed_at


@dataclass(frozen=True)
class CheckpointInfo:
    name: str
    state: Any
    status: str
    owner_run_id: uuid.UUID | None
    owner_attempt: int | None
    updated_at: datetime


@dataclass(frozen=True)
class WaitInfo:
    queue: str
    task_id: uuid.UUID
    task_name: str | None
    run_id: uuid.UUID
    step_name: str
    event_name: str
    created_at: datetime
    timeout_at: datetime | None


@dataclass(frozen=True)
class TaskDetail:
    queue: str
    task_id: uuid.UUID
    task_name: str
    state: str
    attempts: int
    max_attempts: int | None
    params: Any
    headers: Any
    retry_strategy: Any
    cancellation: Any
    idempotency_key: str | None
    enqueue_at: datetime
    first_started_at: datetime | None
    cancelled_at: datetime | None
    result: Any
    """completed_payload (only meaningful when completed)."""
    last_run_id: uuid.UUID | None
    runs: tuple[RunInfo, ...]
    checkpoints: tuple[CheckpointInfo, ...]
    checkpoints_truncated: bool
    waits: tuple[WaitInfo, ...]

    @property
    def last_run(self) -> RunInfo | None:
        for run in self.runs:
            if run.run_id == self.last_run_id:
                return run
        return self.runs[-1] if self.runs else None

    @property
    def failure(self) -> Any:
        """The failure reason of the newest failed run, if any."""
        for run in reversed(self.runs):
            if run.failure_reason is not None:
                return run.failure_reason
        return None

    @property
    def ended_at(self) -> datetime | None:
        run = self.last_run
        if self.state == "cancelled":
            return self.cancelled_at
        if run is not None and self.state in ("completed", "failed"):
            return run.ended_at
        return None


@dataclass(frozen=True)
class EventInfo:
    queue: str
    event_name: str
    payload: Any
    emitted_at: datetime


@dataclass(frozen=True)
class WorkerSeen:
    """A worker id that holds running runs in the database (any host, any process)."""

    worker: str
    queues: tuple[str, ...]
    running: int
    last_claim_at: datetime | None
    lease_expires_at: datetime | None
    """The earliest lease end among its runs; past it, the next claim reclaims them."""


@dataclass(frozen=True)
class TaskRef:
    queue: str
    task_id: uuid.UUID
    task_name: str
    state: str


class TaskNotFound(DatabaseError):
    pass


class AmbiguousTaskId(DatabaseError):
    def __init__(self, message: str, matches: Sequence[TaskRef]):
        super().__init__(message)
        self.matches = tuple(matches)


# --------------------------------------------------------------------------- helpers


def _ident(prefix: str, queue: str) -> sql.Identifier:
    return sql.Identifier("absurd", f"{prefix}_{queue}")


def short_id(task_id: uuid.UUID | str) -> str:
    """The id as tables show it: its last 12 hex digits.

    UUIDv7 begins with a millisecond timestamp, so tasks spawned together share a long
    prefix while the tail is random; the tail tells them apart. ``find_task`` resolves
    a full id, a prefix, or such a tail.
    """
    return str(task_id)[-SHORT_ID_DIGITS:]


def preview(value: Any, limit: int = PREVIEW_CHARS) -> str:
    """One line of JSON for tables. Control characters are the renderer's business."""
    text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def pretty(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2, default=str)


def queue_names(conn: psycopg.Connection) -> list[str]:
    return [
        row[0] for row in conn.execute("SELECT queue_name FROM absurd.queues ORDER BY queue_name")
    ]


def _queues(conn: psycopg.Connection, queue: str | None) -> list[str]:
    names = queue_names(conn)
    if queue is None:
        return names
    return [queue] if queue in names else []


def _db_now(conn: psycopg.Connection) -> datetime:
    return conn.execute("SELECT absurd.current_time()").fetchone()[0]


# --------------------------------------------------------------------------- counts


def _capped_count(conn: psycopg.Connection, query: sql.Composable, params: Sequence[Any]) -> Count:
    """count(*) of ``query`` but reading at most COUNT_CAP + 1 of its rows."""
    stmt = sql.SQL("SELECT count(*) FROM ({} LIMIT {}) AS capped").format(
        query, sql.Literal(COUNT_CAP + 1)
    )
    n = conn.execute(stmt, params).fetchone()[0]
    if n > COUNT_CAP:
        return Count(COUNT_CAP, capped=True)
    return Count(n)


def _planner_rows(conn: psycopg.Connection, query: sql.Composable, params: Sequence[Any]) -> int:
    plan = conn.execute(sql.SQL("EXPLAIN (FORMAT JSON) {}").format(query), params).fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


# How a live state's runs are found through an index. Pending and sleeping runs are in
# the claim index (r_<q>_sai: partial on those two states in our schema, on (state,
# available_at) upstream). Running runs are found through the lease index
# (r_<q>_cei, partial on running runs that hold a lease), in both schemas; a run
# claimed with claim_timeout 0 holds no lease and is not counted as running here (no
# index covers it: counting it would read the whole run table every refresh).
_LIVE_RUNS = {
    "pending": "state = 'pending'",
    "sleeping": "state = 'sleeping'",
    "running": "state = 'running' AND claim_expires_at IS NOT NULL",
}


def _live_counts(conn: psycopg.Connection, queue: str) -> dict[str, Count]:
    # One live run per live task, in the same state (contract section 5), so these
    # read only the live part of the run table however many finished tasks there are.
    runs = _ident("r", queue)
    return {
        state: _capped_count(conn, sql.SQL("SELECT 1 FROM {} WHERE " + predicate).format(runs), ())
        for state, predicate in _LIVE_RUNS.items()
    }


def _terminal_counts(conn: psycopg.Connection, queue: str) -> dict[str, Count]:
    tasks = _ident("t", queue)
    # pg_class.reltuples (kept by autovacuum; -1 before the first ANALYZE) tells a
    # table that is surely big without reading it.
    known = conn.execute(
        "SELECT reltuples FROM pg_class WHERE oid = to_regclass(%s)",
        (tasks.as_string(conn),),
    ).fetchone()
    if known is None or known[0] < 2 * COUNT_CAP:
        # Small table: an exact count that reads at most COUNT_CAP + 1 rows.
        rows = conn.execute(
            sql.SQL(
                "SELECT state, count(*) FROM (SELECT state FROM {} LIMIT {}) AS s GROUP BY state"
            ).format(tasks, sql.Literal(COUNT_CAP + 1))
        ).fetchall()
        seen = dict(rows)
        if sum(seen.values()) <= COUNT_CAP:
            return {state: Count(seen.get(state, 0)) for state in TERMINAL_STATES}
    # Big table: the planner's estimate from pg_statistic (or from the table's size
    # when it was never analysed). Costs a plan, not a scan.
    return {
        state: Count(
            _planner_rows(
                conn, sql.SQL("SELECT 1 FROM {} WHERE state = %s").format(tasks), (state,)
            ),
            estimated=True,
        )
        for state in TERMINAL_STATES
    }


def queue_summary(
    conn: psycopg.Connection, queue: str, created_at: datetime | None = None
) -> QueueSummary:
    counts = {**_live_counts(conn, queue), **_terminal_counts(conn, queue)}
    runs = _ident("r", queue)
    now = _db_now(conn)
    claimable_query = sql.SQL(
        "SELECT available_at FROM {} WHERE state IN ('pending', 'sleeping') AND available_at <= %s"
    ).format(runs)
    claimable = _capped_count(conn, claimable_query, (now,))
    oldest = conn.execute(
        sql.SQL(
            "SELECT min(available_at) FROM {} "
            "WHERE state IN ('pending', 'sleeping') AND available_at <= %s"
        ).format(runs),
        (now,),
    ).fetchone()[0]
    return QueueSummary(
        queue=queue,
        created_at=created_at,
        counts=tuple((state, counts[state]) for state in STATES),
        claimable=claimable,
        oldest_claimable_at=oldest,
    )


def queue_summaries(conn: psycopg.Connection) -> list[QueueSummary]:
    """Every queue with its task counts by state, claimable runs and lag."""
    rows = conn.execute(
        "SELECT queue_name, created_at FROM absurd.queues ORDER BY queue_name"
    ).fetchall()
    return [queue_summary(conn, name, created_at) for name, created_at in rows]


# --------------------------------------------------------------------------- task lists


_HEX = re.compile(r"^[0-9a-fA-F-]+$")


def _id_bounds(prefix: str) -> tuple[uuid.UUID, uuid.UUID] | None:
    """The uuid range covered by a hex prefix, or None if it is not one."""
    digits = prefix.replace("-", "").lower()
    if not digits or not _HEX.match(prefix) or len(digits) > 32:
        return None
    low = uuid.UUID(digits.ljust(32, "0"))
    high = uuid.UUID(digits.ljust(32, "f"))
    return low, high


def _suffix(text: str) -> str | None:
    """The hex tail to match for a short id (as ``short_id`` shows), if it is one."""
    digits = text.strip().lower()
    if (
        len(digits) < MIN_SUFFIX_DIGITS
        or len(digits) > 32
        or not re.fullmatch(r"[0-9a-f]+", digits)
    ):
        return None
    return digits


# Runs of a task state that an index lists, to find such tasks without walking the
# task table: r_<q>_sai (pending, sleeping), r_<q>_cei (running with a lease),
# r_<q>_fai (failed; upstream's r_<q>_sai on (state, available_at) serves all four).
_RUNS_IN_STATE = {**_LIVE_RUNS, "failed": "state = 'failed'"}


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
        return state in _LIVE_RUNS
    count = summary.count(state)
    return not count.capped and count.value <= COUNT_CAP


def _search_parts(flt: TaskFilter) -> list[str | None]:
    """A search is an id prefix (a range on the primary key) or a name prefix. Each
    is queried on its own so the id range keeps its index (an OR would lose it)."""
    if not flt.search:
        return [None]
    text = flt.search.strip()
    if _id_bounds(text) is None:
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
                ).format(_ident("r", queue))
            )
    if flt.name:
        clauses.append(sql.SQL("t.task_name LIKE %s"))
        params.append(_like_prefix(flt.name))
    if flt.search and search_part == "name":
        clauses.append(sql.SQL("t.task_name LIKE %s"))
        params.append(_like_prefix(flt.search.strip()))
    elif flt.search and search_part == "id":
        clauses.append(sql.SQL("t.task_id BETWEEN %s AND %s"))
        params.extend(_id_bounds(flt.search.strip()) or ())
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
        tasks=_ident("t", queue),
        runs=_ident("r", queue),
        checkpoints=_ident("c", queue),
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
            summaries = [queue_summary(conn, q) for q in _queues(conn, flt.queue)]
        total = ZERO
        for summary in summaries:
            if flt.queue and summary.queue != flt.queue:
                continue
            total = total + (summary.count(flt.state) if flt.state else summary.total)
        return total
    by_queue = {summary.queue: summary for summary in summaries or ()}
    total = ZERO
    for queue in _queues(conn, flt.queue):
        via_runs = _via_runs(flt.state, by_queue.get(queue))
        for part in _search_parts(flt):
            if total.capped:
                break
            where, params = _task_where(queue, flt, None, via_runs=via_runs, search_part=part)
            total = total + _capped_count(
                conn,
                sql.SQL("SELECT 1 FROM {} AS t WHERE {}").format(_ident("t", queue), where),
                params,
            )
    if total.value > COUNT_CAP:
        return Count(COUNT_CAP, capped=True)
    return total


def list_tasks(
    conn: psycopg.Connection,
    flt: TaskFilter = TaskFilter(),
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
    for queue in _queues(conn, flt.queue):
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
    for queue in _queues(conn, flt.queue):
        for part in _search_parts(flt):
            where, params = _task_where(
                queue, flt, None, via_runs=flt.state in _LIVE_RUNS, search_part=part
            )
            stmt = sql.SQL(
                "SELECT t.task_id, t.task_name, t.state FROM {} AS t WHERE {} ORDER BY t.task_id DESC LIMIT %s"
            ).format(_ident("t", queue), where)
            for task_id, name, state in conn.execute(stmt, [*params, limit]):
                refs.setdefault(task_id, TaskRef(queue, task_id, name, state))
    return sorted(refs.values(), key=lambda ref: ref.task_id, reverse=True)[:limit]


# --------------------------------------------------------------------------- one task


def task_detail(
    conn: psycopg.Connection, queue: str, task_id: uuid.UUID | str
) -> TaskDetail | None:
    """Everything about one task: its row, runs, checkpoints in order, pending waits."""
    task_id = uuid.UUID(str(task_id))
    if queue not in queue_names(conn):
        return None
    with conn.cursor(row_factory=dict_row) as cur:
        task = cur.execute(
            sql.SQL(
                "SELECT task_id, task_name, state, attempts, max_attempts, params, headers, "
                "retry_strategy, cancellation, idempotency_key, enqueue_at, first_started_at, "
                "cancelled_at, completed_payload, last_attempt_run FROM {} WHERE task_id = %s"
            ).format(_ident("t", queue)),
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
                ).format(_ident("r", queue)),
                (task_id,),
            )
        )
        attempt_of = {run.run_id: run.attempt for run in runs}
        checkpoint_rows = cur.execute(
            sql.SQL(
                "SELECT checkpoint_name, state, status, owner_run_id, updated_at FROM {} "
                "WHERE task_id = %s AND NOT starts_with(checkpoint_name, %s) "
                "ORDER BY updated_at, checkpoint_name LIMIT %s"
            ).format(_ident("c", queue)),
            (task_id, FILE_CHECKPOINT_PREFIX, CHECKPOINT_LIMIT + 1),
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
            for c in checkpoint_rows[:CHECKPOINT_LIMIT]
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
                ).format(_ident("w", queue)),
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
        checkpoints_truncated=len(checkpoint_rows) > CHECKPOINT_LIMIT,
        waits=waits,
    )


def find_task(conn: psycopg.Connection, ref: str, queue: str | None = None) -> TaskRef:
    """Resolve a task id, a unique id prefix, or an id tail as tables show it.

    Raises TaskNotFound, or AmbiguousTaskId with the candidates. Prefixes are a range
    on each queue's primary key (cheap); a tail is tried only when no prefix matches
    and reads the task table (a fraction of a second on a million tasks).
    """
    text = ref.strip().lower()
    bounds = _id_bounds(text)
    if bounds is None:
        raise TaskNotFound(
            f"{ref!r} is not a task id: give the hex digits of an id, a prefix of it, "
            f"or its last {SHORT_ID_DIGITS} digits as shown in tables."
        )
    queues = _queues(conn, queue)
    matches = _find_in(
        conn, queues, sql.SQL("task_id BETWEEN %s AND %s ORDER BY task_id"), list(bounds)
    )
    tail = _suffix(text)
    if not matches and tail is not None:
        matches = tasks_with_id_tail(conn, tail, queue)
    where = f" in queue {queue!r}" if queue else ""
    if not matches:
        raise TaskNotFound(f"No task with id {ref!r}{where}.")
    if len(matches) > 1:
        listed = ", ".join(f"{m.task_id} ({m.queue})" for m in matches[:5])
        raise AmbiguousTaskId(
            f"{ref!r} matches several tasks{where}: {listed}. Give more digits of the id.",
            matches,
        )
    return matches[0]


def tasks_with_id_tail(
    conn: psycopg.Connection, tail: str, queue: str | None = None
) -> list[TaskRef]:
    """Tasks whose id ends with ``tail`` (as ``short_id`` shows), at most 5.

    No index serves this: it reads the task tables (about half a second for a
    million tasks), so callers resolve a tail once and then use the full id.
    """
    tail = tail.strip().lower()
    if not re.fullmatch(r"[0-9a-f-]{1,36}", tail):
        return []
    return _find_in(conn, _queues(conn, queue), sql.SQL("task_id::text LIKE %s"), ["%" + tail])


def _find_in(
    conn: psycopg.Connection, queues: Iterable[str], where: sql.Composable, params: list[Any]
) -> list[TaskRef]:
    matches: list[TaskRef] = []
    for name in queues:
        stmt = sql.SQL("SELECT task_id, task_name, state FROM {} WHERE {} LIMIT 5").format(
            _ident("t", name), where
        )
        matches.extend(TaskRef(name, *row) for row in conn.execute(stmt, params))
    return matches


# --------------------------------------------------------------------------- events


def pending_waits(
    conn: psycopg.Connection, queue: str | None = None, limit: int = 500
) -> list[WaitInfo]:
    """Tasks waiting for an event now, oldest wait first (w_<q> holds only live waits)."""
    waits: list[WaitInfo] = []
    for name in _queues(conn, queue):
        stmt = sql.SQL(
            "SELECT w.task_id, t.task_name, w.run_id, w.step_name, w.event_name, w.created_at, "
            "w.timeout_at FROM {} AS w LEFT JOIN {} AS t ON t.task_id = w.task_id "
            "ORDER BY w.created_at, w.run_id, w.step_name LIMIT %s"
        ).format(_ident("w", name), _ident("t", name))
        for row in conn.execute(stmt, (limit,)):
            waits.append(WaitInfo(name, *row))
    waits.sort(key=lambda w: (w.created_at, str(w.run_id), w.step_name))
    return waits[:limit]


def emitted_events(
    conn: psycopg.Connection, queue: str | None = None, limit: int = 100
) -> list[EventInfo]:
    """Emitted events, newest first. NULL payload rows are await sentinels, not emits."""
    events: list[EventInfo] = []
    for name in _queues(conn, queue):
        stmt = sql.SQL(
            "SELECT event_name, payload, emitted_at FROM {} WHERE payload IS NOT NULL "
            "ORDER BY emitted_at DESC LIMIT %s"
        ).format(_ident("e", name))
        for event_name, payload, emitted_at in conn.execute(stmt, (limit,)):
            events.append(EventInfo(name, event_name, payload, emitted_at))
    events.sort(key=lambda e: (e.emitted_at, e.queue, e.event_name), reverse=True)
    return events[:limit]


def event_emitted_at(conn: psycopg.Connection, queue: str, event_name: str) -> datetime | None:
    """When ``event_name`` was emitted on ``queue`` (primary key lookup); None if not yet."""
    row = conn.execute(
        sql.SQL("SELECT emitted_at FROM {} WHERE event_name = %s AND payload IS NOT NULL").format(
            _ident("e", queue)
        ),
        (event_name,),
    ).fetchone()
    return row[0] if row else None


# --------------------------------------------------------------------------- workers


def workers_seen(conn: psycopg.Connection) -> list[WorkerSeen]:
    """Workers holding running runs, from the database: local threads and remote hosts."""
    seen: dict[str, dict[str, Any]] = {}
    for name in queue_names(conn):
        stmt = sql.SQL(
            # Running runs with a lease: the lease index (r_<q>_cei) serves it.
            "SELECT claimed_by, count(*), max(started_at), min(claim_expires_at) FROM {} "
            "WHERE state = 'running' AND claim_expires_at IS NOT NULL GROUP BY claimed_by"
        ).format(_ident("r", name))
        for worker, running, last_claim, lease in conn.execute(stmt):
            key = worker or "(unknown)"
            entry = seen.setdefault(key, {"queues": [], "running": 0, "last": None, "lease": None})
            entry["queues"].append(name)
            entry["running"] += running
            entry["last"] = _latest(entry["last"], last_claim)
            entry["lease"] = _earliest(entry["lease"], lease)
    return [
        WorkerSeen(
            worker=key,
            queues=tuple(entry["queues"]),
            running=entry["running"],
            last_claim_at=entry["last"],
            lease_expires_at=entry["lease"],
        )
        for key, entry in sorted(seen.items())
    ]


def _latest(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None or b is None:
        return a or b
    return max(a, b)


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None or b is None:
        return a or b
    return min(a, b)


__all__ = [
    "LIVE_STATES",
    "STATES",
    "TERMINAL_STATES",
    "AmbiguousTaskId",
    "CheckpointInfo",
    "Count",
    "EventInfo",
    "QueueSummary",
    "RunInfo",
    "TaskDetail",
    "TaskFilter",
    "TaskNotFound",
    "TaskPage",
    "TaskRef",
    "TaskRow",
    "WaitInfo",
    "WorkerSeen",
    "count_tasks",
    "emitted_events",
    "find_task",
    "list_task_ids",
    "list_tasks",
    "pending_waits",
    "pretty",
    "preview",
    "queue_names",
    "queue_summaries",
    "queue_summary",
    "short_id",
    "task_detail",
    "tasks_with_id_tail",
    "workers_seen",
]
