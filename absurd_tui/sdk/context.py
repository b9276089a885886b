"""The task context: what a handler ``def handler(params, ctx)`` works with.

Everything durable a task does goes through here. Each step's JSON result is stored
as a checkpoint named after the step; when the run executes again (after a sleep, an
event, a crash or a retry) the handler runs from the top and every step already
checkpointed returns its stored value instead of running again.

Step names repeat as ``name``, ``name#2``, ``name#3`` within one execution; the
counter is shared by steps, sleeps and event waits and starts afresh on every
execution, so the same code path always meets the same checkpoint names.
"""

from __future__ import annotations

import contextvars
import json
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, TypeVar, overload

import psycopg
from psycopg import sql

from ..db import tables
from . import jsonvalue
from .errors import (
    CancelledTask,
    FailedTask,
    InvalidParams,
    InvalidStepResult,
    SuspendTask,
    TimeoutError,
    task_state_errors,
)
from .results import TaskResultSnapshot, await_with_backoff, fetch_result_snapshot
from .validation import parse_uuid, validate_event_name, validate_queue_name

R = TypeVar("R")

_MISSING = object()  # a cached JSON null is a real value, so "not found" needs its own marker

# Set by the executor around each handler call.
current_context_var: contextvars.ContextVar[TaskContext | None] = contextvars.ContextVar(
    "absurd_tui_current_task_context", default=None
)


def get_current_context() -> TaskContext | None:
    """The context of the task running in this thread, or None outside a task."""
    return current_context_var.get()


@dataclass(frozen=True)
class StepHandle:
    """One checkpoint slot, from ``begin_step``; ``done`` when it already has a value."""

    name: str
    checkpoint_name: str
    done: bool
    state: Any = None


@dataclass(frozen=True)
class ClaimedTask:
    """One row of ``absurd.claim_task``: a run this worker now holds."""

    queue_name: str
    run_id: str
    task_id: str
    attempt: int
    task_name: str
    params: Any
    retry_strategy: Any
    max_attempts: int | None
    headers: Mapping[str, Any] | None
    wake_event: str | None
    event_payload: Any

    @classmethod
    def from_row(cls, queue_name: str, row: Mapping[str, Any]) -> ClaimedTask:
        return cls(
            queue_name=queue_name,
            run_id=str(row["run_id"]),
            task_id=str(row["task_id"]),
            attempt=int(row["attempt"]),
            task_name=row["task_name"],
            params=row["params"],
            retry_strategy=row["retry_strategy"],
            max_attempts=row["max_attempts"],
            headers=row["headers"],
            wake_event=row["wake_event"],
            event_payload=row["event_payload"],
        )


@dataclass(frozen=True)
class SchemaFeatures:
    """What the installed engine offers beyond upstream 0.5.1's contract."""

    await_event_timed_out: bool
    """await_event returns a third column ``timed_out`` and records timeouts durably."""


def detect_features(conn: psycopg.Connection) -> SchemaFeatures:
    row = conn.execute(
        """
        SELECT coalesce(bool_or('timed_out' = ANY (p.proargnames)), false)
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = 'absurd' AND p.proname = 'await_event'
        """
    ).fetchone()
    return SchemaFeatures(await_event_timed_out=bool(row and row[0]))


class RunControl:
    """Lets the runtime stop a running task at its next durable operation.

    The lease keeper marks a run cancelled or lost when a heartbeat is refused, and a
    stopping pool marks it abandoned; the context checks this before each database
    write, so the handler stops promptly instead of working on for nothing.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stop: BaseException | None = None

    def stop(self, error: BaseException) -> None:
        with self._lock:
            if self._stop is None:
                self._stop = error

    @property
    def stopped(self) -> BaseException | None:
        with self._lock:
            return self._stop

    def check(self) -> None:
        error = self.stopped
        if error is not None:
            raise type(error)(*error.args)


StepObserver = Callable[[str], None]


class TaskContext:
    """Durable operations for one execution of a claimed task (built by the worker)."""

    # Set by _create: the constructor is closed to users.
    _conn: psycopg.Connection
    _claimed: ClaimedTask
    _queue: str
    _claim_timeout: int
    _features: SchemaFeatures
    _worker_id: str | None
    _control: RunControl
    _observer: StepObserver | None
    _counter: dict[str, int]
    _wake_event: str | None
    _event_payload: Any
    _current_step: str | None
    _headers: Mapping[str, Any]
    _run_state_query: sql.Composed
    _cache: dict[str, Any]

    def __init__(self) -> None:
        raise TypeError("TaskContext instances are created by the worker, not directly")

    @classmethod
    def _create(
        cls,
        conn: psycopg.Connection,
        claimed: ClaimedTask,
        *,
        claim_timeout: int,
        features: SchemaFeatures,
        worker_id: str | None = None,
        control: RunControl | None = None,
        observer: StepObserver | None = None,
    ) -> TaskContext:
        ctx = object.__new__(cls)
        ctx._conn = conn
        ctx._claimed = claimed
        ctx._queue = claimed.queue_name
        ctx._claim_timeout = claim_timeout
        ctx._features = features
        ctx._worker_id = worker_id
        ctx._control = control or RunControl()
        ctx._observer = observer
        ctx._counter = {}
        ctx._wake_event = claimed.wake_event
        ctx._event_payload = claimed.event_payload
        ctx._current_step = None
        # Other SDKs may store any JSON as headers; only an object becomes a mapping.
        headers = claimed.headers
        ctx._headers = (
            MappingProxyType(dict(headers))
            if isinstance(headers, dict)
            else (MappingProxyType({}) if headers is None else headers)
        )
        ctx._run_state_query = sql.SQL(
            """
            SELECT t.state AS task_state, r.state AS run_state,
                   cp.checkpoint_name IS NOT NULL AS found, cp.state
            FROM {runs} r
            JOIN {tasks} t ON t.task_id = r.task_id
            LEFT JOIN absurd.get_task_checkpoint_state(%s, %s, %s) cp ON true
            WHERE r.run_id = %s
            """
        ).format(runs=tables.runs(ctx._queue), tasks=tables.tasks(ctx._queue))
        rows = conn.execute(
            """SELECT checkpoint_name, state
               FROM absurd.get_task_checkpoint_states(%s, %s, %s)""",
            (claimed.queue_name, claimed.task_id, claimed.run_id),
        ).fetchall()
        ctx._cache = {name: state for name, state in rows}
        return ctx

    # -- identity ------------------------------------------------------------------

    @property
    def task_id(self) -> str:
        return self._claimed.task_id

    @property
    def run_id(self) -> str:
        return self._claimed.run_id

    @property
    def attempt(self) -> int:
        return self._claimed.attempt

    @property
    def task_name(self) -> str:
        return self._claimed.task_name

    @property
    def queue_name(self) -> str:
        return self._queue

    @property
    def params(self) -> Any:
        return self._claimed.params

    @property
    def headers(self) -> Mapping[str, Any]:
        """The headers given at spawn, read-only (``{}`` if none)."""
        return self._headers

    @property
    def worker_id(self) -> str | None:
        return self._worker_id

    @property
    def claim_timeout(self) -> int:
        return self._claim_timeout

    @property
    def current_step(self) -> str | None:
        """The checkpoint name of the step, sleep or wait begun last."""
        return self._current_step

    def __repr__(self) -> str:
        return (
            f"<TaskContext {self.task_name!r} task={self.task_id} run={self.run_id} "
            f"attempt={self.attempt} queue={self.queue_name!r}>"
        )

    # -- steps ---------------------------------------------------------------------

    def step(self, name: str, fn: Callable[[], R]) -> R:
        """Run ``fn`` once and checkpoint its JSON result; later executions return the
        stored value without calling ``fn``.

        The value returned is the stored JSON form (tuples come back as lists), the same
        on the first execution as on every replay.
        """
        handle = self.begin_step(name)
        if handle.done:
            return handle.state
        return self.complete_step(handle, fn())

    def begin_step(self, name: str) -> StepHandle:
        """Take the next checkpoint slot for ``name`` and say whether it is done.

        The slot is consumed even if ``complete_step`` is never called.
        """
        checkpoint_name = self._next_checkpoint_name(name)
        state = self._lookup(checkpoint_name)
        if state is _MISSING:
            return StepHandle(name=name, checkpoint_name=checkpoint_name, done=False)
        return StepHandle(name=name, checkpoint_name=checkpoint_name, done=True, state=state)

    def complete_step(self, handle: StepHandle, value: Any) -> Any:
        """Store ``value`` for a step begun with ``begin_step`` and return its JSON form."""
        if handle.done:
            return handle.state
        text = jsonvalue.dumps(
            value,
            path="result",
            error=InvalidStepResult,
            context=(
                f'Step "{handle.checkpoint_name}" of task "{self.task_name}" returned a value '
                "that cannot be checkpointed"
            ),
        )
        self._persist(handle.checkpoint_name, text)
        return self._cache[handle.checkpoint_name]

    @overload
    def run_step(self, name_or_fn: Callable[[], R]) -> R: ...

    @overload
    def run_step(self, name_or_fn: str | None = None) -> Callable[[Callable[[], R]], R]: ...

    def run_step(self, name_or_fn: Any = None) -> Any:
        """Decorator running the function as a step and binding its name to the result:
        ``@ctx.run_step``, ``@ctx.run_step()`` or ``@ctx.run_step("name")``."""
        if callable(name_or_fn):
            return self.step(_callable_name(name_or_fn), name_or_fn)
        custom = name_or_fn if isinstance(name_or_fn, str) else None

        def decorator(fn: Callable[[], R]) -> R:
            return self.step(custom if custom is not None else _callable_name(fn), fn)

        return decorator

    # -- sleeps --------------------------------------------------------------------

    def sleep_for(self, step_name: str, duration: float | timedelta) -> None:
        """Suspend this task for ``duration`` seconds, durably.

        The wake time is fixed by the first execution and measured on the database
        clock (``absurd.current_time()``), so restarts, replays and clock skew between
        hosts do not move it.
        """
        seconds = duration.total_seconds() if isinstance(duration, timedelta) else float(duration)
        if not math.isfinite(seconds):
            raise ValueError(f"sleep_for needs a finite duration, not {duration!r}")
        checkpoint_name = self._next_checkpoint_name(step_name)
        stored = self._lookup(checkpoint_name)
        now = self._database_now()
        self._sleep(checkpoint_name, stored, lambda: now + timedelta(seconds=seconds), now)

    def sleep_until(self, step_name: str, wake_at: datetime | float) -> None:
        """Suspend this task until ``wake_at`` (an aware datetime or a Unix time)."""
        if isinstance(wake_at, bool) or not isinstance(wake_at, (datetime, int, float)):
            raise TypeError(f"sleep_until needs a datetime or a Unix time, not {wake_at!r}")
        if isinstance(wake_at, (int, float)):
            wake_at = datetime.fromtimestamp(wake_at, UTC)
        elif wake_at.tzinfo is None:
            raise ValueError(
                f"sleep_until needs a timezone-aware datetime; {wake_at.isoformat()} has no "
                "timezone (use e.g. datetime(..., tzinfo=timezone.utc))"
            )
        target = wake_at
        checkpoint_name = self._next_checkpoint_name(step_name)
        stored = self._lookup(checkpoint_name)
        self._sleep(checkpoint_name, stored, lambda: target, None)

    def _sleep(
        self,
        checkpoint_name: str,
        stored: Any,
        wake_at: Callable[[], datetime],
        now: datetime | None,
    ) -> None:
        if stored is _MISSING:
            target = wake_at()
            self._persist(checkpoint_name, json.dumps(target.isoformat()))
        elif isinstance(stored, str):
            target = _parse_timestamp(stored)
        else:
            raise InvalidStepResult(
                f'The checkpoint "{checkpoint_name}" holds {stored!r}, not a wake time: a '
                "sleep and a step share this name"
            )
        if now is None:
            now = self._database_now()
        if target > now:
            self._control.check()
            self._conn.execute(
                "SELECT absurd.schedule_run(%s, %s, %s)", (self._queue, self.run_id, target)
            )
            raise SuspendTask(f'Sleeping until {target.isoformat()} at "{checkpoint_name}"')

    # -- events --------------------------------------------------------------------

    def await_event(
        self,
        event_name: str,
        step_name: str | None = None,
        timeout: float | timedelta | None = None,
    ) -> Any:
        """Wait for ``event_name`` on this queue and return its payload.

        An event emitted before the wait began is returned at once. With ``timeout``
        (seconds), raises ``TimeoutError`` once it passes; the timeout is recorded
        durably, so a replay raises again at the same point instead of returning None.
        """
        validate_event_name(event_name)
        timeout_seconds = _event_timeout(timeout)
        checkpoint_name = self._next_checkpoint_name(step_name or f"$awaitEvent:{event_name}")
        cached = self._lookup(checkpoint_name)
        if cached is not _MISSING:
            return cached
        timed_out_message = f'Timed out waiting for event "{event_name}" at "{checkpoint_name}"'
        # Upstream schema: it records no timeout, so the claim row is the only evidence
        # (the official SDK's behaviour, with its replay caveats).
        if (
            not self._features.await_event_timed_out
            and self._wake_event == event_name
            and self._event_payload is None
        ):
            self._wake_event = None
            raise TimeoutError(timed_out_message)
        columns = (
            "should_suspend, payload, timed_out"
            if self._features.await_event_timed_out
            else ("should_suspend, payload")
        )
        self._control.check()
        with task_state_errors():
            row = self._conn.execute(
                sql.SQL("SELECT {} FROM absurd.await_event(%s, %s, %s, %s, %s, %s)").format(
                    sql.SQL(columns)
                ),
                (
                    self._queue,
                    self.task_id,
                    self.run_id,
                    checkpoint_name,
                    event_name,
                    timeout_seconds,
                ),
            ).fetchone()
        if row is None:
            raise RuntimeError(f'absurd.await_event returned no row for "{checkpoint_name}"')
        should_suspend, payload = row[0], row[1]
        if self._features.await_event_timed_out and row[2]:
            self._wake_event = None
            raise TimeoutError(timed_out_message)
        if should_suspend:
            raise SuspendTask(f'Waiting for event "{event_name}" at "{checkpoint_name}"')
        self._cache[checkpoint_name] = payload
        self._event_payload = None
        return payload

    def emit_event(self, event_name: str, payload: Any = None) -> None:
        """Emit an event on this task's queue (the first emit of a name wins)."""
        validate_event_name(event_name)
        text = jsonvalue.dumps(
            payload, path="payload", error=InvalidParams, context=f'emit_event("{event_name}")'
        )
        self._control.check()
        self._conn.execute("SELECT absurd.emit_event(%s, %s, %s)", (self._queue, event_name, text))

    # -- other tasks and the lease -------------------------------------------------

    def await_task_result(
        self,
        task_id: Any,
        queue_name: str | None = None,
        timeout: float | None = None,
        step_name: str | None = None,
    ) -> TaskResultSnapshot:
        """Wait (inside a step) for a task on another queue to finish.

        It must be another queue: waiting on this one can deadlock a pool whose every
        thread waits for a child that no free thread can run.
        """
        queue = validate_queue_name(queue_name if queue_name is not None else self._queue)
        if queue == self._queue:
            raise ValueError(
                "TaskContext.await_task_result cannot wait on tasks in the same queue because "
                "this can deadlock workers. Spawn the child in a different queue and pass "
                "queue_name."
            )
        child = parse_uuid(task_id)

        def wait() -> dict[str, Any]:
            interval = max(0.5, self._claim_timeout / 2)
            next_beat = time.monotonic() + interval

            def maybe_heartbeat() -> None:
                nonlocal next_beat
                if time.monotonic() >= next_beat:
                    self.heartbeat()
                    next_beat = time.monotonic() + interval

            snapshot = await_with_backoff(
                lambda: fetch_result_snapshot(self._conn, queue, child),
                str(child),
                timeout,
                maybe_heartbeat,
            )
            return snapshot.to_json()

        stored = self.step(step_name or f"$awaitTaskResult:{child}", wait)
        return TaskResultSnapshot.from_json(stored)

    def heartbeat(self, seconds: float | None = None) -> None:
        """Extend this run's lease by ``seconds`` (default: the claim timeout) from now.

        Workers of this package heartbeat automatically; this is for code that must
        stay on the official SDK's semantics or wants a longer lease for one step.
        """
        extend = self._claim_timeout if seconds is None else math.ceil(seconds)
        if extend <= 0:
            return
        self._control.check()
        with task_state_errors():
            self._conn.execute(
                "SELECT absurd.extend_claim(%s, %s, %s)", (self._queue, self.run_id, extend)
            )

    # -- internals -----------------------------------------------------------------

    def _next_checkpoint_name(self, name: str) -> str:
        if not isinstance(name, str) or not name:
            raise ValueError("A step name must be a non-empty string")
        count = self._counter.get(name, 0) + 1
        self._counter[name] = count
        checkpoint_name = name if count == 1 else f"{name}#{count}"
        self._current_step = checkpoint_name
        if self._observer is not None:
            self._observer(checkpoint_name)
        return checkpoint_name

    def _lookup(self, checkpoint_name: str) -> Any:
        """The stored value of a checkpoint, or _MISSING.

        A miss also reads the run's state in the same query, so a task that was
        cancelled, or whose lease was taken over, stops here before running the step.
        """
        if checkpoint_name in self._cache:
            return self._cache[checkpoint_name]
        self._control.check()
        row = self._conn.execute(
            self._run_state_query,
            (self._queue, self.task_id, checkpoint_name, self.run_id),
            prepare=False,
        ).fetchone()
        if row is None:
            raise FailedTask(f'Run "{self.run_id}" no longer exists in queue "{self._queue}"')
        task_state, run_state, found, state = row
        if task_state == "cancelled" or run_state == "cancelled":
            raise CancelledTask("Task has been cancelled")
        if run_state != "running":
            raise FailedTask(
                f'Run "{self.run_id}" is {run_state}, no longer running in queue "{self._queue}"'
            )
        if found:
            self._cache[checkpoint_name] = state
            return state
        return _MISSING

    def _persist(self, checkpoint_name: str, text: str) -> None:
        self._control.check()
        with task_state_errors():
            self._conn.execute(
                "SELECT absurd.set_task_checkpoint_state(%s, %s, %s, %s, %s, %s)",
                (
                    self._queue,
                    self.task_id,
                    checkpoint_name,
                    text,
                    self.run_id,
                    self._claim_timeout,
                ),
            )
        self._cache[checkpoint_name] = json.loads(text)

    def _database_now(self) -> datetime:
        row = self._conn.execute("SELECT absurd.current_time()").fetchone()
        assert row is not None  # a SELECT without FROM always yields one row
        now: datetime = row[0]
        return now


def _callable_name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__name__", None) or repr(fn)


def _parse_timestamp(text: str) -> datetime:
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _event_timeout(timeout: float | timedelta | None) -> int | None:
    """Whole seconds, rounded up: upstream declares the parameter ``integer``."""
    if timeout is None:
        return None
    if isinstance(timeout, timedelta):
        timeout = timeout.total_seconds()
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, (int, float))
        or not math.isfinite(timeout)
    ):
        raise ValueError(f"timeout must be a number of seconds, not {timeout!r}")
    if timeout < 0:
        raise ValueError("timeout must be non-negative")
    return math.ceil(timeout)
