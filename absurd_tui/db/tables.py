"""The names of a queue's tables, composed once for every layer.

Each queue has its own tables in schema ``absurd`` (contract section 2): ``t_<q>``
tasks, ``r_<q>`` runs, ``c_<q>`` checkpoints, ``e_<q>`` events, ``w_<q>`` event waits,
``i_<q>`` idempotency keys. SQL names them only through these helpers, as
``psycopg.sql.Identifier`` (quoted, never string-formatted into the statement).
"""

from __future__ import annotations

from typing import Literal

from psycopg import sql

SCHEMA = "absurd"
TableKind = Literal["t", "r", "c", "e", "w", "i"]
KINDS: tuple[TableKind, ...] = ("t", "r", "c", "e", "w", "i")


def table_name(kind: TableKind, queue: str) -> str:
    """The bare table name, e.g. ``t_default`` (for catalog lookups and messages)."""
    if kind not in KINDS:
        raise ValueError(f"unknown table kind {kind!r}")
    return f"{kind}_{queue}"


def table(kind: TableKind, queue: str, *, qualified: bool = True) -> sql.Identifier:
    """``absurd.<kind>_<queue>`` as an identifier (unqualified with qualified=False)."""
    name = table_name(kind, queue)
    return sql.Identifier(SCHEMA, name) if qualified else sql.Identifier(name)


def tasks(queue: str) -> sql.Identifier:
    return table("t", queue)


def runs(queue: str) -> sql.Identifier:
    return table("r", queue)


def checkpoints(queue: str) -> sql.Identifier:
    return table("c", queue)


def events(queue: str) -> sql.Identifier:
    return table("e", queue)


def waits(queue: str) -> sql.Identifier:
    return table("w", queue)


def idempotency_keys(queue: str) -> sql.Identifier:
    return table("i", queue)


__all__ = [
    "KINDS",
    "SCHEMA",
    "TableKind",
    "checkpoints",
    "events",
    "idempotency_keys",
    "runs",
    "table",
    "table_name",
    "tasks",
    "waits",
]
