"""Small helpers for statements that must return a row (an aggregate, a function call)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

Query = str | bytes | sql.Composable


def scalar(conn: psycopg.Connection, query: Query, params: Sequence[Any] | None = None) -> Any:
    """The first column of the one row ``query`` returns; a missing row is a bug."""
    row = conn.execute(query, params).fetchone()  # type: ignore[arg-type]
    if row is None:
        raise RuntimeError(f"expected a row from {query!r}")
    return row[0]
