"""Task ids as people type them: a full id, a unique prefix, or the tail tables show.

UUIDv7 ids begin with a millisecond timestamp, so tasks spawned together share a
long prefix while the tail is random: tables show the tail (``short_id``), and
``find_task`` accepts any of the three forms.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from psycopg import sql

from .catalog import queues_named
from .errors import DatabaseError
from .models import TaskRef
from .tables import table

SHORT_ID_DIGITS = 12
ID_ONLY_DIGITS = 8
"""A search of this many hex digits (or more) is taken as an id prefix only."""
MIN_SUFFIX_DIGITS = 6
"""A search term this long may also match the tail of an id (what tables show)."""


def short_id(task_id: uuid.UUID | str) -> str:
    """The id as tables show it: its last 12 hex digits.

    UUIDv7 begins with a millisecond timestamp, so tasks spawned together share a long
    prefix while the tail is random; the tail tells them apart. ``find_task`` resolves
    a full id, a prefix, or such a tail.
    """
    return str(task_id)[-SHORT_ID_DIGITS:]


class TaskNotFound(DatabaseError):
    pass


class AmbiguousTaskId(DatabaseError):
    def __init__(self, message: str, matches: Sequence[TaskRef]):
        super().__init__(message)
        self.matches = tuple(matches)


_HEX = re.compile(r"^[0-9a-fA-F-]+$")


def id_bounds(prefix: str) -> tuple[uuid.UUID, uuid.UUID] | None:
    """The uuid range covered by a hex prefix, or None if it is not one."""
    digits = prefix.replace("-", "").lower()
    if not digits or not _HEX.match(prefix) or len(digits) > 32:
        return None
    low = uuid.UUID(digits.ljust(32, "0"))
    high = uuid.UUID(digits.ljust(32, "f"))
    return low, high


def id_suffix(text: str) -> str | None:
    """The hex tail to match for a short id (as ``short_id`` shows), if it is one."""
    digits = text.strip().lower()
    if (
        len(digits) < MIN_SUFFIX_DIGITS
        or len(digits) > 32
        or not re.fullmatch(r"[0-9a-f]+", digits)
    ):
        return None
    return digits


def find_task(conn: psycopg.Connection, ref: str, queue: str | None = None) -> TaskRef:
    """Resolve a task id, a unique id prefix, or an id tail as tables show it.

    Raises TaskNotFound, or AmbiguousTaskId with the candidates. Prefixes are a range
    on each queue's primary key (cheap); a tail is tried only when no prefix matches
    and reads the task table (a fraction of a second on a million tasks).
    """
    text = ref.strip().lower()
    bounds = id_bounds(text)
    if bounds is None:
        raise TaskNotFound(
            f"{ref!r} is not a task id: give the hex digits of an id, a prefix of it, "
            f"or its last {SHORT_ID_DIGITS} digits as shown in tables."
        )
    queues = queues_named(conn, queue)
    matches = _find_in(
        conn, queues, sql.SQL("task_id BETWEEN %s AND %s ORDER BY task_id"), list(bounds)
    )
    tail = id_suffix(text)
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
    return _find_in(conn, queues_named(conn, queue), sql.SQL("task_id::text LIKE %s"), ["%" + tail])


def _find_in(
    conn: psycopg.Connection, queues: Iterable[str], where: sql.Composable, params: list[Any]
) -> list[TaskRef]:
    matches: list[TaskRef] = []
    for name in queues:
        stmt = sql.SQL("SELECT task_id, task_name, state FROM {} WHERE {} LIMIT 5").format(
            table("t", name), where
        )
        matches.extend(TaskRef(name, *row) for row in conn.execute(stmt, params))
    return matches


__all__ = [
    "ID_ONLY_DIGITS",
    "MIN_SUFFIX_DIGITS",
    "SHORT_ID_DIGITS",
    "AmbiguousTaskId",
    "TaskNotFound",
    "find_task",
    "id_bounds",
    "id_suffix",
    "short_id",
    "tasks_with_id_tail",
]
