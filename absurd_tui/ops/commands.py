"""The operations users perform on the engine: queues, spawn, emit, answer, retry, cancel.

Each takes an autocommit connection (the CLI's, or one of the console's), decides
with ``policy``, acts through the SDK, and returns an outcome from ``outcomes``.
Failures raise ``OpsError`` (``errors``); nothing is written when input is refused.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from ..agent import AGENT_TASK, agent_params, answer_payload
from ..agent.task import spawn_agent_task
from ..config import DEFAULT_QUEUE
from ..db.catalog import queue_names
from ..db.models import TaskRef
from ..db.reads.queues import queue_summary
from ..db.tables import events, tasks
from ..sdk import Absurd
from ..sdk.registry import TaskRegistry, default_registry
from ..sdk.validation import validate_params
from ..text import count_label
from . import policy
from .errors import BadInput, ErrorKind, OpsError, TaskNotFound, translated
from .outcomes import (
    Answered,
    Cancelled,
    CancelStatus,
    EmitStatus,
    Emitted,
    QueueCreated,
    QueueDropped,
    Retried,
    RetryStatus,
    Spawned,
)
from .queues import resolve_agent_queue, resolve_queue

# ------------------------------------------------------------------------- queues


def create_queue(conn: psycopg.Connection, queue: str) -> QueueCreated:
    """Create a queue; creating one that exists changes nothing (and says so)."""
    client = Absurd(conn, queue_name=DEFAULT_QUEUE, registry=TaskRegistry())
    with translated(conn):
        existed = queue in queue_names(conn)
        client.create_queue(queue)
    return QueueCreated(queue, created=not existed)


def drop_queue(conn: psycopg.Connection, queue: str) -> QueueDropped:
    """Drop an existing queue with everything in it (UnknownQueue if there is none)."""
    resolve_queue(conn, queue)
    client = Absurd(conn, queue_name=DEFAULT_QUEUE, registry=TaskRegistry())
    with translated(conn):
        held = count_label(queue_summary(conn, queue).total)
        client.drop_queue(queue)
    return QueueDropped(queue, held)


# ------------------------------------------------------------------------- spawn


def spawn_queue(
    task_name: str, queue: str | None = None, registry: TaskRegistry | None = None
) -> str:
    """Where a spawn goes: ``queue``, else the task's registered queue, else the default."""
    if queue is not None:
        return queue
    registration = (registry if registry is not None else default_registry).get(task_name)
    return registration.queue if registration is not None else DEFAULT_QUEUE


def spawn(
    conn: psycopg.Connection,
    task_name: str,
    params: Any = None,
    *,
    queue: str | None = None,
    registry: TaskRegistry | None = None,
    max_attempts: int | None = None,
    retry_strategy: Mapping[str, Any] | None = None,
    cancellation: Mapping[str, Any] | None = None,
    headers: Mapping[str, Any] | None = None,
    idempotency_key: str | None = None,
) -> Spawned:
    """Spawn one task on an existing queue (see ``spawn_queue`` for the default)."""
    return spawn_batch(
        conn,
        task_name,
        [params],
        queue=queue,
        registry=registry,
        max_attempts=max_attempts,
        retry_strategy=retry_strategy,
        cancellation=cancellation,
        headers=headers,
        idempotency_key=idempotency_key,
    )[0]


def spawn_batch(
    conn: psycopg.Connection,
    task_name: str,
    batch: Sequence[Any],
    *,
    queue: str | None = None,
    registry: TaskRegistry | None = None,
    max_attempts: int | None = None,
    retry_strategy: Mapping[str, Any] | None = None,
    cancellation: Mapping[str, Any] | None = None,
    headers: Mapping[str, Any] | None = None,
    idempotency_key: str | None = None,
) -> list[Spawned]:
    """Spawn one task per params in ``batch``, all in one transaction (all or none)."""
    if not isinstance(task_name, str) or not task_name.strip():
        raise BadInput("The task name must not be empty.")
    if not batch:
        raise BadInput("Nothing to spawn: no params given.")
    target = resolve_queue(conn, spawn_queue(task_name, queue, registry))
    client = Absurd(
        conn, queue_name=target, registry=registry if registry is not None else default_registry
    )
    options: dict[str, Any] = {
        "max_attempts": max_attempts,
        "retry_strategy": retry_strategy,
        "cancellation": cancellation,
        "headers": headers,
        "idempotency_key": idempotency_key,
    }
    results: list[Spawned] = []
    with translated(conn), conn.transaction():
        for params in batch:
            validate_params(params)
            result = client.spawn(task_name, params, queue=target, **options)
            results.append(
                Spawned(
                    queue=target,
                    task_name=task_name,
                    task_id=uuid.UUID(result.task_id),
                    run_id=uuid.UUID(result.run_id),
                    attempt=result.attempt,
                    created=result.created,
                    idempotency_key=idempotency_key,
                )
            )
    return results


def spawn_agent(
    conn: psycopg.Connection,
    prompt: str,
    *,
    model: str | None = None,
    max_iterations: int | None = None,
    system: str | None = None,
    queue: str | None = None,
    registry: TaskRegistry | None = None,
) -> Spawned:
    """Spawn the built-in agent; its own queue is created on demand (``queues``)."""
    with translated(conn):
        agent_params(prompt, model=model, max_iterations=max_iterations, system=system)
    target = resolve_agent_queue(conn, queue, registry)
    with translated(conn):
        result = spawn_agent_task(
            conn, prompt, model=model, max_iterations=max_iterations, system=system, queue=target
        )
    return Spawned(
        queue=target,
        task_name=AGENT_TASK,
        task_id=uuid.UUID(result.task_id),
        run_id=uuid.UUID(result.run_id),
        attempt=result.attempt,
        created=result.created,
    )


# ------------------------------------------------------------------------- emit


def emit(conn: psycopg.Connection, queue: str, event_name: str, payload: Any = None) -> Emitted:
    """Emit an event; ``ALREADY_EMITTED`` when an earlier emit of the name won.

    The emit and the check of who won are one transaction: the event row written
    (or merely locked) by this transaction tells, so two racing emits cannot both
    report EMITTED.
    """
    if not isinstance(event_name, str) or not event_name.strip():
        raise BadInput("The event name must not be empty.")
    resolve_queue(conn, queue)
    client = Absurd(conn, queue_name=queue, registry=TaskRegistry())
    with translated(conn), conn.transaction():
        client.emit_event(event_name, payload, queue_name=queue)
        row = conn.execute(
            sql.SQL(
                "SELECT emitted_at, xmin = pg_current_xact_id()::xid FROM {} WHERE event_name = %s"
            ).format(events(queue)),
            (event_name,),
        ).fetchone()
    emitted_at: datetime | None = row[0] if row is not None else None
    ours = bool(row[1]) if row is not None else True
    return Emitted(
        queue=queue,
        event_name=event_name,
        status=EmitStatus.EMITTED if ours else EmitStatus.ALREADY_EMITTED,
        emitted_at=emitted_at,
    )


def answer(conn: psycopg.Connection, queue: str, event_name: str, text: str) -> Answered:
    """Answer an agent's question (its ``ask_human`` event); the first answer wins."""
    if not isinstance(text, str) or not text.strip():
        raise BadInput("The answer is empty: type something for the agent.")
    return Answered(emit(conn, queue, event_name, answer_payload(text)))


# ------------------------------------------------------------------------- retry, cancel


def retry(
    conn: psycopg.Connection,
    task: TaskRef,
    *,
    spawn_new: bool = False,
    max_attempts: int | None = None,
) -> Retried:
    """Retry a failed task in place (its next attempt), or as a new task with
    ``spawn_new``. ``task.state`` is the state as last seen; if the engine finds the
    task no longer failed, the outcome says what it is now (NOT_FAILED)."""
    if not policy.can_retry(task.state):
        return Retried(task, RetryStatus.NOT_FAILED, task.state)
    client = Absurd(conn, queue_name=task.queue, registry=TaskRegistry())
    try:
        with translated(conn):
            result = client.retry_task(
                task.task_id,
                max_attempts=max_attempts,
                spawn_new=spawn_new,
                queue_name=task.queue,
            )
    except OpsError as exc:
        if exc.kind is not ErrorKind.REFUSED:
            raise
        now = _state_now(conn, task)
        if now is None or policy.can_retry(now):
            raise
        return Retried(task, RetryStatus.NOT_FAILED, now)
    return Retried(
        task,
        RetryStatus.SPAWNED_NEW if spawn_new else RetryStatus.RETRIED,
        "pending",
        new_task_id=uuid.UUID(result.task_id),
        run_id=uuid.UUID(result.run_id),
        attempt=result.attempt,
        created=result.created,
    )


def cancel(conn: psycopg.Connection, task: TaskRef) -> Cancelled:
    """Cancel a task that has not finished.

    ``ALREADY_FINISHED`` when ``task.state`` (as last seen) is terminal, in which case
    nothing is asked of the engine, or when someone else cancelled it first. Otherwise
    the cancel and the read of the task's state are one transaction, so
    ``FINISHED_FIRST`` reports exactly a task that completed or failed before the
    cancel could take effect (the engine leaves finished tasks alone).
    """
    if not policy.can_cancel(task.state):
        return Cancelled(task, CancelStatus.ALREADY_FINISHED, task.state)
    with translated(conn), conn.transaction():
        conn.execute("SELECT absurd.cancel_task(%s, %s)", (task.queue, task.task_id))
        # Whether this transaction wrote the task row tells a cancel of ours from one
        # that someone else made first (both leave the task cancelled).
        row = conn.execute(
            sql.SQL(
                "SELECT state, xmin = pg_current_xact_id()::xid FROM {} WHERE task_id = %s"
            ).format(tasks(task.queue)),
            (task.task_id,),
        ).fetchone()
    if row is None:
        raise TaskNotFound(f"Task {task.task_id} is no longer in queue {task.queue!r}.")
    state, ours = row
    if state == "cancelled":
        status = CancelStatus.CANCELLED if ours else CancelStatus.ALREADY_FINISHED
        return Cancelled(task, status, state)
    return Cancelled(task, CancelStatus.FINISHED_FIRST, state)


def _state_now(conn: psycopg.Connection, task: TaskRef) -> str | None:
    with translated(conn):
        row = conn.execute(
            sql.SQL("SELECT state FROM {} WHERE task_id = %s").format(tasks(task.queue)),
            (task.task_id,),
        ).fetchone()
    return row[0] if row is not None else None


__all__ = [
    "answer",
    "cancel",
    "create_queue",
    "drop_queue",
    "emit",
    "retry",
    "spawn",
    "spawn_agent",
    "spawn_batch",
    "spawn_queue",
]
