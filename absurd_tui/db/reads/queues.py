"""Queue summaries: task counts by state, claimable runs and lag, per queue.

Counts are never a scan of a whole table. Live tasks (pending, running, sleeping)
mirror exactly one live run each, so they are counted on the run table's indexes,
capped. Terminal tasks are the bulk of a big queue; they are counted exactly only
while the table is small and otherwise estimated by the planner (``EXPLAIN``), which
is free and uses the table's statistics. Estimated figures are flagged so screens can
say "~1.2M".
"""

from __future__ import annotations

from datetime import datetime

import psycopg
from psycopg import sql

from ..models import STATES, TERMINAL_STATES, Count, QueueSummary
from ..query import scalar
from ..tables import table
from .common import COUNT_CAP, LIVE_RUNS, capped_count, db_now, planner_rows


def _live_counts(conn: psycopg.Connection, queue: str) -> dict[str, Count]:
    # One live run per live task, in the same state (contract section 5), so these
    # read only the live part of the run table however many finished tasks there are.
    runs = table("r", queue)
    return {
        state: capped_count(conn, sql.SQL("SELECT 1 FROM {} WHERE " + predicate).format(runs), ())
        for state, predicate in LIVE_RUNS.items()
    }


def _terminal_counts(conn: psycopg.Connection, queue: str) -> dict[str, Count]:
    tasks = table("t", queue)
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
        seen: dict[str, int] = dict(rows)
        if sum(seen.values()) <= COUNT_CAP:
            return {state: Count(seen.get(state, 0)) for state in TERMINAL_STATES}
    # Big table: the planner's estimate from pg_statistic (or from the table's size
    # when it was never analysed). Costs a plan, not a scan.
    return {
        state: Count(
            planner_rows(
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
    runs = table("r", queue)
    now = db_now(conn)
    claimable_query = sql.SQL(
        "SELECT available_at FROM {} WHERE state IN ('pending', 'sleeping') AND available_at <= %s"
    ).format(runs)
    claimable = capped_count(conn, claimable_query, (now,))
    oldest = scalar(
        conn,
        sql.SQL(
            "SELECT min(available_at) FROM {} "
            "WHERE state IN ('pending', 'sleeping') AND available_at <= %s"
        ).format(runs),
        (now,),
    )
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
