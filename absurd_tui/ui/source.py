"""Where the TUI gets its data and sends its commands: the database, off the UI thread.

Every method here blocks (it does database I/O) and is called only from thread
workers. Reads return immutable snapshots (frozen dataclasses from db.models);
commands are ``absurd_tui.ops`` operations and return their outcomes, whose
``message`` the console shows, word for word what the CLI says.

Every failure is an ``ops.OpsError`` classified by SQLSTATE (``ops.errors``). Only a
lost connection (``error.unreachable``) is an outage: the status bar says so once and
the UI retries. A statement timeout, a serialization failure or a deadlock keep the
connection and are reported as what they are; nothing was changed.
"""

from __future__ import annotations

import json
import queue as queue_module
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

import psycopg
from psycopg.pq import TransactionStatus

from .. import ops
from ..db import ids, reads
from ..db.connect import connect
from ..db.errors import DatabaseError, DatabaseUnavailable
from ..db.models import (
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
from ..ops import BulkPlan, BulkResult

READ_STATEMENT_TIMEOUT_MS = 15_000
"""No statement of the console runs longer; a read that would is reported, not waited on."""
TAIL_RETRY = 30.0


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
    def queue_names(self) -> list[str]: ...
    def task_types(self) -> list[TaskType]: ...
    def spawn(
        self, queue: str, name: str, params: Any, max_attempts: int | None
    ) -> ops.Spawned: ...
    def emit(self, queue: str, event_name: str, payload: Any) -> ops.Emitted: ...
    def retry(self, task: TaskRef, *, spawn_new: bool, max_attempts: int | None) -> ops.Retried: ...
    def cancel(self, task: TaskRef) -> ops.Cancelled: ...
    def spawn_agent(
        self, queue: str, prompt: str, model: str, max_iterations: int | None
    ) -> ops.Spawned: ...
    def answer(self, queue: str, event_name: str, text: str) -> ops.Answered: ...
    def plan_bulk(self, operation: ops.BulkOperation, flt: TaskFilter) -> BulkPlan: ...
    def run_bulk(
        self, plan: BulkPlan, progress: Callable[[int, int], None] | None = None
    ) -> BulkResult: ...
    def listen(self, channels: Sequence[str]) -> psycopg.Connection: ...
    def close(self) -> None: ...


class LiveSource:
    """The real data source: a small cache of connections to one database.

    Not a pool with background reconnection: the UI decides when to retry (with
    backoff), and each attempt either gets a working connection or fails fast.
    Connections that fail are dropped, never reused.
    """

    def __init__(
        self,
        dsn: str,
        label: str,
        registry: Any = None,
        *,
        connect_timeout: int = 3,
        statement_timeout_ms: int = READ_STATEMENT_TIMEOUT_MS,
    ):
        self.dsn = dsn
        self.label = label
        self._registry = registry
        self._connect_timeout = connect_timeout
        self._statement_timeout_ms = statement_timeout_ms
        self._idle: queue_module.LifoQueue[psycopg.Connection] = queue_module.LifoQueue()
        self._closed = threading.Event()
        self._tails: dict[str, tuple[float, tuple[TaskRef, ...]]] = {}

    # -- connections

    def _open(self) -> psycopg.Connection:
        return connect(
            self.dsn,
            connect_timeout=self._connect_timeout,
            application_name="absurd-tui:ui",
            statement_timeout_ms=self._statement_timeout_ms,
        )

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """A connection for one read or command; errors come out as ``ops.OpsError``.

        Only a lost connection is dropped: after a timeout, a conflict or a refusal
        the connection is as good as before and goes back for the next caller.
        """
        try:
            conn = self._idle.get_nowait()
        except queue_module.Empty:
            try:
                conn = self._open()
            except DatabaseUnavailable as exc:
                raise ops.translate(exc, dsn=self.dsn) from exc
        try:
            yield conn
        except (psycopg.Error, DatabaseError) as exc:
            kind = ops.kind_of(exc, conn)
            self._release(conn, lost=kind is ops.ErrorKind.CONNECTION_LOST)
            if kind is None or isinstance(exc, ops.OpsError):
                raise
            raise ops.translate(exc, conn=conn, dsn=self.dsn) from exc
        except BaseException:
            self._release(conn, lost=False)
            raise
        else:
            self._release(conn, lost=False)

    def _release(self, conn: psycopg.Connection, *, lost: bool) -> None:
        reusable = (
            not lost
            and not self._closed.is_set()
            and not conn.closed
            and not conn.broken
            and conn.info.transaction_status == TransactionStatus.IDLE
        )
        if reusable:
            self._idle.put(conn)
        else:
            conn.close()

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
            self.dsn, connect_timeout=self._connect_timeout, application_name="absurd-tui:listen"
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
        if len(term) != ids.SHORT_ID_DIGITS or not all(c in "0123456789abcdef" for c in term):
            return flt
        found = self._tails.get(term)
        if found is None or (not found[1] and time.monotonic() - found[0] > TAIL_RETRY):
            found = (time.monotonic(), tuple(ids.tasks_with_id_tail(conn, term, flt.queue)))
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

    # -- commands: ops operations, like the CLI's

    def spawn(self, queue: str, name: str, params: Any, max_attempts: int | None) -> ops.Spawned:
        with self.connection() as conn:
            return ops.spawn(
                conn, name, params, queue=queue, registry=self._registry, max_attempts=max_attempts
            )

    def emit(self, queue: str, event_name: str, payload: Any) -> ops.Emitted:
        with self.connection() as conn:
            return ops.emit(conn, queue, event_name, payload)

    def retry(self, task: TaskRef, *, spawn_new: bool, max_attempts: int | None) -> ops.Retried:
        with self.connection() as conn:
            return ops.retry(conn, task, spawn_new=spawn_new, max_attempts=max_attempts)

    def cancel(self, task: TaskRef) -> ops.Cancelled:
        with self.connection() as conn:
            return ops.cancel(conn, task)

    def spawn_agent(
        self, queue: str, prompt: str, model: str, max_iterations: int | None
    ) -> ops.Spawned:
        with self.connection() as conn:
            return ops.spawn_agent(
                conn,
                prompt,
                model=model,
                max_iterations=max_iterations,
                queue=queue,
                registry=self._registry,
            )

    def answer(self, queue: str, event_name: str, text: str) -> ops.Answered:
        with self.connection() as conn:
            return ops.answer(conn, queue, event_name, text)

    def plan_bulk(self, operation: ops.BulkOperation, flt: TaskFilter) -> BulkPlan:
        with self.connection() as conn:
            return ops.plan_bulk(conn, operation, flt)

    def run_bulk(
        self, plan: BulkPlan, progress: Callable[[int, int], None] | None = None
    ) -> BulkResult:
        with self.connection() as conn:
            return ops.run_bulk(conn, plan, progress=progress, should_stop=self._closed.is_set)


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
    "BulkPlan",
    "BulkResult",
    "Count",
    "DataSource",
    "EventsSnapshot",
    "LiveSource",
    "TaskType",
    "TasksSnapshot",
    "parse_json",
    "utcnow",
]
