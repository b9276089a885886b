"""Exceptions of the SDK.

The first four carry the official Python SDK's names and meanings so code written for
it reads the same here. ``TimeoutError`` is deliberately our own class (derived from
``Exception``), not the builtin, exactly as upstream does.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg


class SuspendTask(Exception):
    """Raised inside a task to park its run (a sleep or an event wait); the worker
    catches it and the run resumes later from its checkpoints."""


class CancelledTask(Exception):
    """The task was cancelled (engine error AB001); the worker stops it quietly."""


class FailedTask(Exception):
    """This run has already failed, usually because its lease expired and another
    worker took over (engine error AB002); the worker stops it quietly."""


class TaskAbandoned(FailedTask):
    """The worker pool stopped while this task ran; it makes no further writes. The pool
    hands its run back to the queue (the same attempt, claimable at once), or, if that
    fails, leaves it to be reclaimed when its lease expires."""


class NonRetryableError(Exception):
    """Raise from a handler to fail the task now, without the attempts it has left.

    For errors a retry cannot fix (invalid input, a rejected credential). The failure
    reason carries ``"retryable": false``, which this project's engine honours; on an
    upstream Absurd schema the key is ignored and the task retries as usual.
    ``retry_task`` still revives such a task.
    """


class TimeoutError(Exception):
    """Waiting for an event or a task result took longer than the timeout."""


class _NamesField(Exception):
    """An error about one field of the input; ``field`` is its name, when known."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class InvalidInput(_NamesField, ValueError):
    """A value the engine must not be given: malformed, out of range, too large, or text
    PostgreSQL cannot store. Raised before any SQL runs, so nothing has changed; the
    message names the field and says what is expected."""


class PayloadTooLarge(InvalidInput):
    """A JSON value (params, headers, a payload, a result) is over the size limit."""


class NotJSONError(_NamesField, TypeError):
    """A value that must be stored as JSON is not JSON (the message names where)."""


class InvalidParams(NotJSONError, InvalidInput):
    """Spawn parameters, headers or an event payload that cannot be stored: not JSON,
    holding text PostgreSQL cannot store, or over the size limit."""


class InvalidStepResult(NotJSONError):
    """A step (or a whole task) returned a value that cannot be checkpointed as JSON."""


class ParamsTooLarge(InvalidParams, PayloadTooLarge):
    """Spawn parameters, headers or an event payload over the size limit."""


class StepResultTooLarge(InvalidStepResult, PayloadTooLarge):
    """A step or task result over the size limit."""


class UnknownTaskError(LookupError):
    """A task name that is not registered, used where a registration is required."""


class TaskModuleError(ImportError):
    """A task module given to ``--tasks`` could not be found or imported."""


# SQLSTATEs the engine raises for runs that must stop (contract section 0.6).
CANCELLED_SQLSTATE = "AB001"
FAILED_SQLSTATE = "AB002"


def sqlstate(err: BaseException) -> str | None:
    return getattr(err, "sqlstate", None) or getattr(err, "pgcode", None)


@contextmanager
def task_state_errors() -> Iterator[None]:
    """Turn AB001/AB002 from the engine into CancelledTask/FailedTask.

    Matching the official SDK, only the SQLSTATE is inspected, never message text.
    """
    try:
        yield
    except psycopg.Error as err:
        code = sqlstate(err)
        if code == CANCELLED_SQLSTATE:
            raise CancelledTask(str(err).strip()) from err
        if code == FAILED_SQLSTATE:
            raise FailedTask(str(err).strip()) from err
        raise
