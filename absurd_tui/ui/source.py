"""Where the TUI gets its data and sends its commands: the database, off the UI thread.

Every method here blocks (it does database I/O) and is called only from thread
workers. Reads return immutable snapshots (frozen dataclasses from db.reads); commands
go through the SDK, exactly as a script or the CLI would.

Errors come in two kinds, and the UI treats them differently:
* ``DatabaseUnavailable``: the server cannot be reached. The status bar says so once
  and retries; nothing was changed.
* ``ActionError``: the command was refused (the task is no longer failed, the JSON is
  not valid ...). Shown to the user; nothing was changed.
"""

from __future__ import annotations

import json
import queue as queue_module
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

import psycopg

from ..agent import AGENT_QUEUE, AGENT_TASK, answer_question, spawn_agent
from ..agent.artifacts import load_contents
from ..db import reads
from ..db.connect import connect, unavailable
from ..db.errors import DatabaseError, DatabaseUnavailable
from ..db.reads import (
    Count,
    EventInfo,
    QueueSummary,
    TaskDetail,
    TaskFilter,
    TaskPage,
    TaskRef,
    WaitInfo,
    WorkerSeen,
)

READ_STATEMENT_TIMEOUT_MS = 15_000
TAIL_RETRY = 30.0
BULK_LIMIT = 100_000


class ActionError(DatabaseError):
    """A command the database refused; the message says why, for the user."""


@dataclass(frozen=True)
class TasksSnapshot:
    queues: tuple[QueueSummary, ...]
    page: TaskPage
    counted: bool
    """Whether ``page.matches`` was computed this time (it is refreshed less often)."""


@dataclass(frozen=True)
class EventsSnapshot:
    waits: tuple[WaitInfo, ...]
    events: tuple[EventInfo, ...]


@dataclass(frozen=True)
class BulkPlan:
    """The tasks a bulk command would touch, listed before the user confirms."""

    operation: str
    """``retry`` or ``cancel``."""
    flt: TaskFilter
    tasks: tuple[TaskRef, ...]
    truncated: bool


@dataclass(frozen=True)
class BulkResult:
    done: int
    skipped: int
    errors: tuple[str, ...]
    stopped: str | None = None
    """Why the command stopped before the end (the database went away), if it did."""


@dataclass(frozen=True)
class TaskType:
    """A task name the spawn dialog offers, with the queue it is registered on."""

    name: str
    queue: str
    default_max_attempts: int | None = None


class DataSource(Protocol):
    label: str

    def tasks(
        self, flt: TaskFilter, limit: int, after: uuid.UUID | None, count: bool
    ) -> TasksSnapshot: ...
    def events(self) -> EventsSnapshot: ...
    def workers_seen(self) -> tuple[WorkerSeen, ...]: ...
    def task_detail(self, queue: str, task_id: uuid.UUID) -> TaskDetail | None: ...
    def file_contents(
        self, queue: str, task_id: uuid.UUID, hashes: Sequence[str]
    ) -> dict[str, bytes]: ...
    def queue_names(self) -> list[str]: ...
    def task_types(self) -> list[TaskType]: ...
    def spawn(self, queue: str, name: str, params: Any, max_attempts: int | None) -> uuid.UUID: ...
    def emit(self, queue: str, event_name: str, payload: Any) -> None: ...
    def retry(
        self, queue: str, task_id: uuid.UUID, *, spawn_new: bool, max_attempts: int | None
    ) -> uuid.UUID: ...
    def cancel(self, queue: str, task_id: uuid.UUID) -> None: ...
    def spawn_agent(
        self, queue: str, prompt: str, model: str, max_iterations: int | None
    ) -> uuid.UUID: ...
    def answer(self, queue: str, event_name: str, text: str) -> None: ...
    def plan_bulk(self, operation: str, flt: TaskFilter) -> BulkPlan: ...
    def run_bulk(self, plan: BulkPlan) -> BulkResult: ...
    def listen(self, channels: Sequence[str]) -> psycopg.Connection: ...
    def close(self) -> None: ...


class LiveSource:
    """The real data source: a small cache of connections to one database.

    Not a pool with background reconnection: the UI decides when to retry (with
    backoff), and each attempt either gets a working connection or fails fast.
    Connections that fail are dropped, never reused.
    """

    def __init__(self, dsn: str, label: str, registry: Any = None, *, connect_timeout: int = 3):
        self.dsn = dsn
        self.label = label
        self._registry = registry
        self._connect_timeout = connect_timeout
        self._idle: queue_module.LifoQueue[psycopg.Connection] = queue_module.LifoQueue()
        self._closed = threading.Event()
        self._tails: dict[str, tuple[float, tuple[TaskRef, ...]]] = {}

    # -- connections

    def _open(self) -> psycopg.Connection:
        conn = connect(
            self.dsn,
            autocommit=True,
            connect_timeout=self._connect_timeout,
            application_name="absurd-tui:ui",
        )
        conn.execute(f"SET statement_timeout = {READ_STATEMENT_TIMEOUT_MS}")
        return conn

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        try:
            conn = self._idle.get_nowait()
        except queue_module.Empty:
            conn = self._open()
        try:
            yield conn
        except psycopg.OperationalError as exc:
            conn.close()
            raise unavailable(self.dsn, exc) from exc
        except BaseException:
            if conn.closed or conn.broken:
                conn.close()
            else:
                self._idle.put(conn)
            raise
        else:
            if self._closed.is_set() or conn.closed or conn.broken:
                conn.close()
            else:
                self._idle.put(conn)

    def close(self) -> None:
        self._closed.set()
        while True:
            try:
                self._idle.get_nowait().close()
            except queue_module.Empty:
                return

    def listen(self, channels: Sequence[str]) -> psycopg.Connection:
        """A dedicated connection LISTENing on ``channels``; the caller owns it."""
        conn = connect(
            self.dsn,
            autocommit=True,
            connect_timeout=self._connect_timeout,
            application_name="absurd-tui:listen",
        )
        for channel in channels:
            conn.execute(psycopg.sql.SQL("LISTEN {}").format(psycopg.sql.Identifier(channel)))
        return conn

    # -- reads

    def tasks(
        self, flt: TaskFilter, limit: int, after: uuid.UUID | None, count: bool
    ) -> TasksSnapshot:
        with self.connection() as conn:
            flt = self._resolve_short_id(conn, flt)
            queues = tuple(reads.queue_summaries(conn))
            page = reads.list_tasks(conn, flt, limit, after, count=count, summaries=queues)
        return TasksSnapshot(queues=queues, page=page, counted=count)

    def _resolve_short_id(self, conn: psycopg.Connection, flt: TaskFilter) -> TaskFilter:
        """A search for an id as tables show it (its tail) becomes a search for the id.

        Finding a tail reads the task tables, so it is done once per term and
        remembered (ids never change); a term that matched nothing is looked up again
        after TAIL_RETRY seconds, in case such a task has been spawned since.
        """
        term = (flt.search or "").strip().lower()
        if len(term) != reads.SHORT_ID_DIGITS or not all(c in "0123456789abcdef" for c in term):
            return flt
        found = self._tails.get(term)
        if found is None or (not found[1] and time.monotonic() - found[0] > TAIL_RETRY):
            found = (time.monotonic(), tuple(reads.tasks_with_id_tail(conn, term, flt.queue)))
            self._tails[term] = found
        refs = found[1]
        if len(refs) == 1:
            return replace(flt, search=str(refs[0].task_id))
        return flt

    def events(self) -> EventsSnapshot:
        with self.connection() as conn:
            return EventsSnapshot(
                waits=tuple(reads.pending_waits(conn)),
                events=tuple(reads.emitted_events(conn)),
            )

    def workers_seen(self) -> tuple[WorkerSeen, ...]:
        with self.connection() as conn:
            return tuple(reads.workers_seen(conn))

    def task_detail(self, queue: str, task_id: uuid.UUID) -> TaskDetail | None:
        with self.connection() as conn:
            return reads.task_detail(conn, queue, task_id)

    def file_contents(
        self, queue: str, task_id: uuid.UUID, hashes: Sequence[str]
    ) -> dict[str, bytes]:
        """Stored file contents of an agent task (its artifacts), by content hash."""
        with self.connection() as conn:
            return load_contents(conn, queue, task_id, hashes)

    def queue_names(self) -> list[str]:
        with self.connection() as conn:
            return reads.queue_names(conn)

    def task_types(self) -> list[TaskType]:
        if self._registry is None:
            return []
        return sorted(
            (
                TaskType(reg.name, reg.queue, reg.default_max_attempts)
                for reg in self._registry.registrations()
            ),
            key=lambda t: t.name,
        )

    # -- commands (through the SDK, like any other client)

    @contextmanager
    def _client(self, queue: str) -> Iterator[Any]:
        from ..sdk import Absurd

        with self.connection() as conn:
            try:
                yield Absurd(conn, queue_name=queue, registry=self._registry)
            except psycopg.OperationalError:
                raise
            except (psycopg.Error, ValueError, TypeError, LookupError) as exc:
                raise ActionError(_message(exc)) from exc

    def spawn(self, queue: str, name: str, params: Any, max_attempts: int | None) -> uuid.UUID:
        self._require_queue(queue)
        with self._client(queue) as client:
            result = client.spawn(name, params, max_attempts=max_attempts, queue=queue)
        return uuid.UUID(str(result["task_id"]))

    def emit(self, queue: str, event_name: str, payload: Any) -> None:
        self._require_queue(queue)
        with self._client(queue) as client:
            client.emit_event(event_name, payload, queue_name=queue)

    def retry(
        self, queue: str, task_id: uuid.UUID, *, spawn_new: bool, max_attempts: int | None
    ) -> uuid.UUID:
        with self._client(queue) as client:
            result = client.retry_task(
                task_id, max_attempts=max_attempts, spawn_new=spawn_new, queue_name=queue
            )
        return uuid.UUID(str(result["task_id"]))

    def cancel(self, queue: str, task_id: uuid.UUID) -> None:
        with self._client(queue) as client:
            client.cancel_task(task_id, queue_name=queue)

    def spawn_agent(
        self, queue: str, prompt: str, model: str, max_iterations: int | None
    ) -> uuid.UUID:
        if queue not in (AGENT_QUEUE, self._agent_queue()):
            # Like the CLI: the agent's own queue is created on demand, any other must exist.
            self._require_queue(queue)
        with self.connection() as conn:
            try:
                task_id = spawn_agent(
                    conn, prompt, model=model, max_iterations=max_iterations, queue=queue
                )
            except psycopg.OperationalError:
                raise
            except (psycopg.Error, ValueError) as exc:
                raise ActionError(_message(exc)) from exc
        return uuid.UUID(task_id)

    def answer(self, queue: str, event_name: str, text: str) -> None:
        with self.connection() as conn:
            try:
                answer_question(conn, queue, event_name, text)
            except psycopg.OperationalError:
                raise
            except (psycopg.Error, ValueError) as exc:
                raise ActionError(_message(exc)) from exc

    def _agent_queue(self) -> str | None:
        registered = self._registry.get(AGENT_TASK) if self._registry is not None else None
        return registered.queue if registered is not None else None

    def _require_queue(self, queue: str) -> None:
        if queue not in self.queue_names():
            raise ActionError(
                f"There is no queue {queue!r}. Create it first (absurd-tui queue create {queue})."
            )

    def plan_bulk(self, operation: str, flt: TaskFilter) -> BulkPlan:
        states = bulk_states(operation, flt)
        tasks: list[TaskRef] = []
        with self.connection() as conn:
            for state in states:
                narrowed = TaskFilter(flt.queue, state, flt.name, flt.search)
                tasks.extend(reads.list_task_ids(conn, narrowed, BULK_LIMIT + 1 - len(tasks)))
        truncated = len(tasks) > BULK_LIMIT
        return BulkPlan(operation, flt, tuple(tasks[:BULK_LIMIT]), truncated)

    def run_bulk(self, plan: BulkPlan) -> BulkResult:
        done = skipped = 0
        errors: list[str] = []
        for ref in plan.tasks:
            try:
                if plan.operation == "cancel":
                    self.cancel(ref.queue, ref.task_id)
                else:
                    self.retry(ref.queue, ref.task_id, spawn_new=False, max_attempts=None)
                done += 1
            except DatabaseUnavailable as exc:
                if done == 0 and skipped == 0:
                    raise  # nothing was changed: report it as such
                return BulkResult(done, skipped, tuple(errors), stopped=str(exc))
            except ActionError as exc:
                # The task moved on since it was listed (say it completed, or someone
                # else retried it): skipping it is what the user asked for.
                skipped += 1
                if len(errors) < 5:
                    errors.append(f"{reads.short_id(ref.task_id)}: {exc}")
        return BulkResult(done, skipped, tuple(errors))


def bulk_states(operation: str, flt: TaskFilter) -> tuple[str, ...]:
    """The task states a bulk command applies to, within the filter's state."""
    applicable = reads.LIVE_STATES if operation == "cancel" else ("failed",)
    if flt.state:
        return (flt.state,) if flt.state in applicable else ()
    return applicable


def _message(exc: BaseException) -> str:
    if isinstance(exc, psycopg.Error) and exc.diag.message_primary:
        return exc.diag.message_primary
    return " ".join(str(exc).split()) or exc.__class__.__name__


def parse_json(text: str) -> Any:
    """JSON from a dialog; empty means JSON null. Raises ValueError with the position."""
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"line {exc.lineno}, column {exc.colno}: {exc.msg}") from exc


def utcnow() -> datetime:
    return datetime.now(UTC)


__all__ = [
    "ActionError",
    "BulkPlan",
    "BulkResult",
    "Count",
    "DataSource",
    "DatabaseUnavailable",
    "EventsSnapshot",
    "LiveSource",
    "TaskType",
    "TasksSnapshot",
    "bulk_states",
    "parse_json",
    "utcnow",
]
