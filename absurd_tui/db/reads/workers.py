"""Workers as the database sees them: claimed_by of running runs, on any host."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from ..models import WorkerSeen
from ..tables import table
from .common import queue_names


def workers_seen(conn: psycopg.Connection) -> list[WorkerSeen]:
    """Workers holding running runs, from the database: local threads and remote hosts."""
    seen: dict[str, dict[str, Any]] = {}
    for name in queue_names(conn):
        stmt = sql.SQL(
            # Running runs with a lease: the lease index (r_<q>_cei) serves it.
            "SELECT claimed_by, count(*), max(started_at), min(claim_expires_at) FROM {} "
            "WHERE state = 'running' AND claim_expires_at IS NOT NULL GROUP BY claimed_by"
        ).format(table("r", name))
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
