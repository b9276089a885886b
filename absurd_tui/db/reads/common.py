"""What the read queries share: the queue list, the database clock, capped counts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from ..catalog import db_now, queue_names, queues_named
from ..models import Count
from ..query import scalar

COUNT_CAP = 10_000
"""Counts stop at this many rows; the UI shows "10,000+" past it."""


def capped_count(conn: psycopg.Connection, query: sql.Composable, params: Sequence[Any]) -> Count:
    """count(*) of ``query`` but reading at most COUNT_CAP + 1 of its rows."""
    stmt = sql.SQL("SELECT count(*) FROM ({} LIMIT {}) AS capped").format(
        query, sql.Literal(COUNT_CAP + 1)
    )
    n = scalar(conn, stmt, params)
    if n > COUNT_CAP:
        return Count(COUNT_CAP, capped=True)
    return Count(n)


def planner_rows(conn: psycopg.Connection, query: sql.Composable, params: Sequence[Any]) -> int:
    plan = scalar(conn, sql.SQL("EXPLAIN (FORMAT JSON) {}").format(query), params)
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


# How a live state's runs are found through an index. Pending and sleeping runs are in
# the claim index (r_<q>_sai: partial on those two states in our schema, on (state,
# available_at) upstream). Running runs are found through the lease index
# (r_<q>_cei, partial on running runs that hold a lease), in both schemas; a run
# claimed with claim_timeout 0 holds no lease and is not counted as running here (no
# index covers it: counting it would read the whole run table every refresh).
LIVE_RUNS = {
    "pending": "state = 'pending'",
    "sleeping": "state = 'sleeping'",
    "running": "state = 'running' AND claim_expires_at IS NOT NULL",
}


__all__ = [
    "COUNT_CAP",
    "LIVE_RUNS",
    "capped_count",
    "db_now",
    "planner_rows",
    "queue_names",
    "queues_named",
]
