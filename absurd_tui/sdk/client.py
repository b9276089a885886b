"""The client: spawn tasks, emit events, cancel, retry, read results, manage queues.

``Absurd`` takes a DSN (or nothing, reading ``ABSURD_DATABASE_URL``), a psycopg
``ConnectionPool`` or a psycopg ``Connection``:

* a DSN or a pool gives a client that any number of threads may share; each call
  borrows an autocommit connection from the pool;
* a connection is used as it is, never committed (so calls join the caller's
  transaction), with calls from different threads serialised by a lock.

Names and arguments follow the official Python SDK. Task ids may be given as text or
``uuid.UUID`` and are returned as text.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, fields
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from ..config import DEFAULT_QUEUE
from ..db import dsn as dsn_text
from ..db.connect import connection_kwargs
from . import jsonvalue
from .context import SchemaFeatures, TaskContext, detect_features
from .errors import InvalidInput, InvalidParams
from .execution import ExecutionResult, claim_tasks, execute_task
from .registry import TaskHandler, TaskRegistry, default_registry
from .results import TaskResultSnapshot, await_with_backoff, fetch_result_snapshot
from .validation import (
    DEFAULT_RETRY_STRATEGY,
    parse_uuid,
    validate_cancellation,
    validate_event_name,
    validate_json_object,
    validate_max_attempts,
    validate_queue_name,
    validate_retry_strategy,
    validate_task_name,
    validate_text,
)

DEFAULT_URL = "postgresql://localhost/absurd"
STORAGE_MODES = ("unpartitioned", "partitioned")
_POLICY_KEYS = (
    "partition_lookahead",
    "partition_lookback",
    "cleanup_ttl",
    "cleanup_limit",
    "detach_mode",
    "detach_min_age",
)


class _RecordMapping(Mapping[str, Any]):
    """Lets a frozen dataclass also be read like the dict the official SDK returns."""

    def __getitem__(self, key: str) -> Any:
        if key in self._keys():
            return getattr(self, key)
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys())

    def __len__(self) -> int:
        return len(self._keys())

    def _keys(self) -> tuple[str, ...]:
        return tuple(f.name for f in fields(self))  # type: ignore[arg-type]


@dataclass(frozen=True, eq=False)
class SpawnResult(_RecordMapping):
    """``result.task_id`` or ``result["task_id"]``; ``created`` is False when an
    idempotency key matched an existing task (whose ids are returned)."""

    task_id: str
    run_id: str
    attempt: int
    created: bool = True


@dataclass(frozen=True, eq=False)
class RetryTaskResult(_RecordMapping):
    task_id: str
    run_id: str
    attempt: int
    created: bool


def default_connection_url() -> str:
    return os.environ.get("ABSURD_DATABASE_URL") or os.environ.get("PGDATABASE") or DEFAULT_URL


class Absurd:
    """A thread-safe Absurd client (see the module docstring for the connection forms)."""

    def __init__(
        self,
        conn_or_dsn_or_pool: str | psycopg.Connection | ConnectionPool | None = None,
        queue_name: str = DEFAULT_QUEUE,
        default_max_attempts: int = 5,
        registry: TaskRegistry | None = None,
        *,
        pool_size: int = 4,
    ) -> None:
        self._queue_name = validate_queue_name(queue_name)
        if default_max_attempts is not None:
            validate_max_attempts(default_max_attempts, "default_max_attempts")
        self._default_max_attempts = default_max_attempts
        self._registry = registry if registry is not None else default_registry
        self._features: SchemaFeatures | None = None
        self._conn: psycopg.Connection | None = None
        self._pool: ConnectionPool | None = None
        self._owns_pool = False
        # Reentrant: a handler run by work_batch on this client may call the client.
        self._conn_lock = threading.RLock()
        source = (
            conn_or_dsn_or_pool if conn_or_dsn_or_pool is not None else default_connection_url()
        )
        if isinstance(source, str):
            dsn_text.check(source)
            self._dsn: str | None = source
            self._pool = ConnectionPool(
                source,
                min_size=1,
                max_size=max(1, pool_size),
                kwargs=connection_kwargs(application_name="absurd-tui client"),
                check=ConnectionPool.check_connection,
                name="absurd-tui-client",
                timeout=15,
                open=True,
            )
            self._owns_pool = True
        elif isinstance(source, ConnectionPool):
            self._dsn = None
            self._pool = source
        elif isinstance(source, psycopg.Connection):
            self._dsn = None
            self._conn = source
        else:
            raise TypeError(
                "Absurd() takes a DSN string, a psycopg Connection or a psycopg_pool "
                f"ConnectionPool, not {type(source).__name__}"
            )

    # -- plumbing ------------------------------------------------------------------

    @property
    def queue_name(self) -> str:
        return self._queue_name

    @property
    def dsn(self) -> str | None:
        """The DSN this client was built from; None when given a connection or a pool."""
        return self._dsn

    @property
    def registry(self) -> TaskRegistry:
        return self._registry

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """A connection for one operation: borrowed from the pool, or the user's own
        connection held under the client's lock."""
        if self._pool is not None:
            with self._pool.connection() as conn:
                yield conn
        else:
            assert self._conn is not None
            with self._conn_lock:
                yield self._conn

    def close(self) -> None:
        """Close the pool if this client opened it (a connection or pool given is left
        open)."""
        if self._owns_pool and self._pool is not None:
            self._pool.close()

    def __enter__(self) -> Absurd:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _queue(self, queue_name: str | None) -> str:
        return validate_queue_name(queue_name if queue_name is not None else self._queue_name)

    # -- registration --------------------------------------------------------------

    def register_task(
        self,
        name: str,
        queue: str | None = None,
        default_max_attempts: int | None = None,
        default_cancellation: Mapping[str, Any] | None = None,
    ) -> Callable[[TaskHandler], TaskHandler]:
        """Decorator registering ``def handler(params, ctx)`` in this client's registry;
        the queue defaults to the client's queue."""
        return self._registry.register_task(
            name,
            queue=queue if queue is not None else self._queue_name,
            default_max_attempts=default_max_attempts,
            default_cancellation=default_cancellation,
        )

    # -- queues --------------------------------------------------------------------

    def create_queue(
        self,
        queue_name: str | None = None,
        *,
        storage_mode: str = "unpartitioned",
        partition_lookahead: str | None = None,
        partition_lookback: str | None = None,
        cleanup_ttl: str | None = None,
        cleanup_limit: int | None = None,
        detach_mode: str | None = None,
        detach_min_age: str | None = None,
    ) -> None:
        """Create a queue (idempotent), optionally setting its maintenance policy."""
        queue = self._queue(queue_name)
        if storage_mode not in STORAGE_MODES:
            raise ValueError("storage_mode must be 'unpartitioned' or 'partitioned'")
        policy = _policy(
            partition_lookahead=partition_lookahead,
            partition_lookback=partition_lookback,
            cleanup_ttl=cleanup_ttl,
            cleanup_limit=cleanup_limit,
            detach_mode=detach_mode,
            detach_min_age=detach_min_age,
        )
        # One transaction, so a rejected policy leaves no queue behind; a user's connection
        # outside autocommit is already in the caller's transaction.
        with self.connection() as conn, conn.transaction() if conn.autocommit else nullcontext():
            if storage_mode == "unpartitioned":
                conn.execute("SELECT absurd.create_queue(%s)", (queue,))
            else:
                conn.execute("SELECT absurd.create_queue(%s, %s)", (queue, storage_mode))
            if policy:
                conn.execute(
                    "SELECT absurd.set_queue_policy(%s, %s::jsonb)", (queue, json.dumps(policy))
                )

    def set_queue_policy(
        self,
        queue_name: str | None = None,
        *,
        partition_lookahead: str | None = None,
        partition_lookback: str | None = None,
        cleanup_ttl: str | None = None,
        cleanup_limit: int | None = None,
        detach_mode: str | None = None,
        detach_min_age: str | None = None,
    ) -> None:
        queue = self._queue(queue_name)
        policy = _policy(
            partition_lookahead=partition_lookahead,
            partition_lookback=partition_lookback,
            cleanup_ttl=cleanup_ttl,
            cleanup_limit=cleanup_limit,
            detach_mode=detach_mode,
            detach_min_age=detach_min_age,
        )
        if not policy:
            return
        with self.connection() as conn:
            conn.execute(
                "SELECT absurd.set_queue_policy(%s, %s::jsonb)", (queue, json.dumps(policy))
            )

    def get_queue_policy(self, queue_name: str | None = None) -> dict[str, Any] | None:
        """The queue's policy row (intervals as timedelta), or None if no such queue."""
        queue = self._queue(queue_name)
        with self.connection() as conn:
            return (
                conn.cursor(row_factory=dict_row)
                .execute(
                    """SELECT queue_name, storage_mode, partition_lookahead, partition_lookback,
                              cleanup_ttl, cleanup_limit, detach_mode, detach_min_age
                       FROM absurd.get_queue_policy(%s)""",
                    (queue,),
                )
                .fetchone()
            )

    def drop_queue(self, queue_name: str | None = None) -> None:
        """Drop a queue and everything in it. Over-long legacy names are allowed here,
        as in the engine, so they can still be removed."""
        queue = queue_name if queue_name is not None else self._queue_name
        if not queue:
            raise ValueError("Queue name must be provided")
        with self.connection() as conn:
            conn.execute("SELECT absurd.drop_queue(%s)", (queue,))

    def list_queues(self) -> list[str]:
        with self.connection() as conn:
            return [row[0] for row in conn.execute("SELECT queue_name FROM absurd.list_queues()")]

    # -- tasks ---------------------------------------------------------------------

    def spawn(
        self,
        task_name: str,
        params: Any = None,
        max_attempts: int | None = None,
        retry_strategy: Mapping[str, Any] | None = None,
        headers: Mapping[str, Any] | None = None,
        queue: str | None = None,
        cancellation: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> SpawnResult:
        """Enqueue a task. A registered task goes to its registered queue; an
        unregistered one needs ``queue=``. Params must be JSON."""
        validate_task_name(task_name)
        registration = self._registry.get(task_name)
        if registration is not None:
            if queue is not None and queue != registration.queue:
                raise InvalidInput(
                    f'Task "{task_name}" is registered for queue "{registration.queue}" '
                    f'but spawn requested queue "{queue}".',
                    field="queue",
                )
            actual_queue = registration.queue
        elif queue is None:
            raise InvalidInput(
                f'Task "{task_name}" is not registered. Provide queue when spawning '
                "unregistered tasks.",
                field="queue",
            )
        else:
            actual_queue = queue
        actual_queue = validate_queue_name(actual_queue)

        effective_max_attempts = max_attempts
        if effective_max_attempts is None and registration is not None:
            effective_max_attempts = registration.default_max_attempts
        if effective_max_attempts is None:
            effective_max_attempts = self._default_max_attempts
        effective_cancellation = cancellation
        if effective_cancellation is None and registration is not None:
            effective_cancellation = registration.default_cancellation

        where = f'spawn("{task_name}")'
        options: dict[str, Any] = {}
        if headers is not None:
            options["headers"] = validate_json_object(headers, "headers")
            jsonvalue.dumps(headers, path="headers", error=InvalidParams, context=where)
        if effective_max_attempts is not None:
            options["max_attempts"] = validate_max_attempts(effective_max_attempts)
        options["retry_strategy"] = validate_retry_strategy(
            retry_strategy if retry_strategy else DEFAULT_RETRY_STRATEGY
        )
        if effective_cancellation is not None:
            cancel = validate_cancellation(effective_cancellation)
            if cancel:
                options["cancellation"] = cancel
        if idempotency_key is not None:
            options["idempotency_key"] = validate_text(idempotency_key, "idempotency_key")

        params_text = jsonvalue.dumps(params, path="params", error=InvalidParams, context=where)
        # Headers were measured on their own above; the rest of the options is small.
        options_text = jsonvalue.dumps(
            options, path="options", error=InvalidParams, context=where, max_bytes=None
        )
        with self.connection() as conn:
            row = conn.execute(
                """SELECT task_id, run_id, attempt, created
                   FROM absurd.spawn_task(%s, %s, %s, %s)""",
                (actual_queue, task_name, params_text, options_text),
            ).fetchone()
        if row is None:
            raise RuntimeError("absurd.spawn_task returned no row")
        return SpawnResult(
            task_id=str(row[0]), run_id=str(row[1]), attempt=row[2], created=bool(row[3])
        )

    def emit_event(
        self, event_name: str, payload: Any = None, queue_name: str | None = None
    ) -> None:
        """Emit an event on a queue: wakes every task waiting for it, and is returned at
        once to any later wait. The first emit of a name wins; later ones do nothing."""
        validate_event_name(event_name)
        queue = self._queue(queue_name)
        text = jsonvalue.dumps(
            payload, path="payload", error=InvalidParams, context=f'emit_event("{event_name}")'
        )
        with self.connection() as conn:
            conn.execute("SELECT absurd.emit_event(%s, %s, %s)", (queue, event_name, text))

    def cancel_task(self, task_id: str | uuid.UUID, queue_name: str | None = None) -> None:
        """Cancel a task; a running handler stops at its next step. Finished tasks are
        left as they are."""
        queue = self._queue(queue_name)
        with self.connection() as conn:
            conn.execute("SELECT absurd.cancel_task(%s, %s)", (queue, parse_uuid(task_id)))

    def retry_task(
        self,
        task_id: str | uuid.UUID,
        *,
        max_attempts: int | None = None,
        spawn_new: bool = False,
        queue_name: str | None = None,
    ) -> RetryTaskResult:
        """Retry a failed task in place (one more attempt unless ``max_attempts``), or
        with ``spawn_new`` start a new task from the same inputs."""
        queue = self._queue(queue_name)
        options: dict[str, Any] = {}
        if max_attempts is not None:
            options["max_attempts"] = validate_max_attempts(max_attempts)
        if spawn_new:
            options["spawn_new"] = True
        with self.connection() as conn:
            row = conn.execute(
                """SELECT task_id, run_id, attempt, created
                   FROM absurd.retry_task(%s, %s, %s)""",
                (queue, parse_uuid(task_id), json.dumps(options)),
            ).fetchone()
        if row is None:
            raise RuntimeError("absurd.retry_task returned no row")
        return RetryTaskResult(
            task_id=str(row[0]), run_id=str(row[1]), attempt=row[2], created=bool(row[3])
        )

    def fetch_task_result(
        self, task_id: str | uuid.UUID, queue_name: str | None = None
    ) -> TaskResultSnapshot | None:
        """The task's state now (with result or failure once terminal); None if unknown."""
        queue = self._queue(queue_name)
        task = parse_uuid(task_id)
        with self.connection() as conn:
            return fetch_result_snapshot(conn, queue, task)

    def await_task_result(
        self,
        task_id: str | uuid.UUID,
        timeout: float | None = None,
        queue_name: str | None = None,
    ) -> TaskResultSnapshot:
        """Poll until the task completes, fails or is cancelled; ``TimeoutError`` after
        ``timeout`` seconds, ``LookupError`` if there is no such task."""
        queue = self._queue(queue_name)
        task = parse_uuid(task_id)

        def fetch() -> TaskResultSnapshot | None:
            with self.connection() as conn:
                return fetch_result_snapshot(conn, queue, task)

        return await_with_backoff(fetch, str(task), timeout)

    # -- working in the caller's thread --------------------------------------------

    def claim_tasks(
        self, batch_size: int = 1, claim_timeout: int = 120, worker_id: str = "worker"
    ) -> list[Any]:
        """Claim up to ``batch_size`` runs from this client's queue (for custom loops)."""
        with self.connection() as conn:
            return claim_tasks(conn, self._queue_name, worker_id, claim_timeout, batch_size)

    def work_batch(
        self, worker_id: str = "worker", claim_timeout: int = 120, batch_size: int = 1
    ) -> list[ExecutionResult]:
        """Claim and execute up to ``batch_size`` runs of this client's queue, one after
        another, in the calling thread; returns what became of each.

        With a connection given to the client, everything happens on it, so a test can
        drive time with ``SET absurd.fake_now`` on that connection. For long-running
        service use ``absurd_tui.runtime.WorkerPool``.
        """
        with self.connection() as conn:
            if self._features is None:
                self._features = detect_features(conn)
            claimed = claim_tasks(
                conn, self._queue_name, worker_id, claim_timeout, batch_size, self._features
            )
            return [
                execute_task(
                    conn,
                    task,
                    self._registry,
                    claim_timeout=claim_timeout,
                    features=self._features,
                    worker_id=worker_id,
                )
                for task in claimed
            ]

    def __repr__(self) -> str:
        mode = "pool" if self._pool is not None else "connection"
        return f"<Absurd queue={self._queue_name!r} via {mode}>"


def _policy(**values: Any) -> dict[str, Any]:
    return {key: values[key] for key in _POLICY_KEYS if values.get(key) is not None}


__all__ = ["Absurd", "RetryTaskResult", "SpawnResult", "TaskContext", "default_connection_url"]
