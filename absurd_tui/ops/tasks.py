"""Resolving a task reference: a full id, a unique prefix, or the short id tables show."""

from __future__ import annotations

import uuid

import psycopg

from ..db import ids
from ..db.models import TaskRef
from ..db.tables import tasks
from .errors import AmbiguousTask, TaskNotFound, translated
from .queues import resolve_queue


def resolve_task(conn: psycopg.Connection, ref: str, queue: str | None = None) -> TaskRef:
    """The one task ``ref`` names (in ``queue`` if given, which must exist).

    Raises UnknownQueue, TaskNotFound, or AmbiguousTask (with the candidates).
    """
    if queue is not None:
        resolve_queue(conn, queue)
    with translated(conn):
        try:
            return ids.find_task(conn, ref, queue)
        except ids.AmbiguousTaskId as exc:
            raise AmbiguousTask(str(exc), exc.matches) from exc
        except ids.TaskNotFound as exc:
            raise TaskNotFound(str(exc)) from exc


def task_ref(conn: psycopg.Connection, queue: str, task_id: uuid.UUID | str) -> TaskRef:
    """The task as it is now, by queue and full id; TaskNotFound if it is not there."""
    task_id = uuid.UUID(str(task_id))
    resolve_queue(conn, queue)
    with translated(conn):
        row = conn.execute(
            psycopg.sql.SQL("SELECT task_name, state FROM {} WHERE task_id = %s").format(
                tasks(queue)
            ),
            (task_id,),
        ).fetchone()
    if row is None:
        raise TaskNotFound(f"No task with id {task_id} in queue {queue!r}.")
    return TaskRef(queue, task_id, row[0], row[1])


__all__ = ["resolve_task", "task_ref"]
