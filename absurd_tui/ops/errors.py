"""The errors an operation reports, one class per ``ErrorKind``, each with its message.

``translate(exc)`` turns a database (or SDK input) error into one of these; ops
functions raise nothing else for failures they can explain. Adapters map the kind to
their own reaction (the CLI to an exit code, the console to a status-bar outage or a
refusal toast); they never look at SQLSTATEs themselves.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import psycopg

from ..db import dsn as dsn_text
from ..db.errors import (
    DatabaseError,
    DatabaseUnavailable,
    ErrorKind,
    classify,
    is_connection_lost,
    primary_message,
)
from ..db.models import TaskRef
from ..sdk.errors import NotJSONError


class OpsError(DatabaseError):
    """An operation that did not happen; ``str(error)`` is the whole explanation."""

    kind: ErrorKind = ErrorKind.REFUSED

    @property
    def unreachable(self) -> bool:
        return self.kind.unreachable

    @property
    def transient(self) -> bool:
        return self.kind.transient


class ConnectionLost(OpsError, DatabaseUnavailable):
    """The database cannot be reached (also a ``DatabaseUnavailable``)."""

    kind = ErrorKind.CONNECTION_LOST


class TimedOut(OpsError):
    kind = ErrorKind.TIMED_OUT


class Conflict(OpsError):
    kind = ErrorKind.CONFLICT


class NotFound(OpsError):
    kind = ErrorKind.NOT_FOUND


class UnknownQueue(NotFound):
    def __init__(self, message: str, queue: str, known: Sequence[str]):
        super().__init__(message)
        self.queue = queue
        self.known = tuple(known)


class TaskNotFound(NotFound):
    pass


class BadInput(OpsError):
    kind = ErrorKind.BAD_INPUT


class AmbiguousTask(BadInput):
    def __init__(self, message: str, matches: Sequence[TaskRef]):
        super().__init__(message)
        self.matches = tuple(matches)


class Refused(OpsError):
    kind = ErrorKind.REFUSED


_BY_KIND: dict[ErrorKind, type[OpsError]] = {
    ErrorKind.CONNECTION_LOST: ConnectionLost,
    ErrorKind.TIMED_OUT: TimedOut,
    ErrorKind.CONFLICT: Conflict,
    ErrorKind.NOT_FOUND: NotFound,
    ErrorKind.BAD_INPUT: BadInput,
    ErrorKind.REFUSED: Refused,
}


def kind_of(exc: BaseException, conn: psycopg.Connection | None = None) -> ErrorKind | None:
    """``classify`` extended to errors the ops layer and the SDK raise."""
    if isinstance(exc, OpsError):
        return exc.kind
    if isinstance(exc, (NotJSONError, ValueError, TypeError)):
        return ErrorKind.BAD_INPUT
    return classify(exc, conn)


def message_for(kind: ErrorKind, exc: BaseException, dsn: str | None = None) -> str:
    """The one sentence each kind of failure is reported with (passwords scrubbed)."""
    reason = dsn_text.scrub(primary_message(exc), dsn)
    if kind is ErrorKind.CONNECTION_LOST:
        if isinstance(exc, DatabaseUnavailable):
            return reason
        return f"Lost the connection to the database: {reason}."
    if kind is ErrorKind.TIMED_OUT:
        return f"The database took too long and cancelled the statement ({reason})."
    if kind is ErrorKind.CONFLICT:
        return (
            f"A concurrent change got in the way ({reason}); nothing was changed, and trying "
            "again should work."
        )
    return reason


def translate(
    exc: BaseException, *, conn: psycopg.Connection | None = None, dsn: str | None = None
) -> OpsError:
    """The OpsError for ``exc``; raises ``exc`` itself again if it is not a database or
    input error (a bug must crash, not be reported as a refusal)."""
    if isinstance(exc, OpsError):
        return exc
    kind = kind_of(exc, conn)
    if kind is None:
        raise exc
    return _BY_KIND[kind](message_for(kind, exc, dsn))


@contextmanager
def translated(conn: psycopg.Connection | None = None, *, dsn: str | None = None) -> Iterator[None]:
    """Re-raise database and input errors in the block as OpsError (the cause kept)."""
    try:
        yield
    except OpsError:
        raise
    except (psycopg.Error, DatabaseError, NotJSONError, ValueError, TypeError) as exc:
        raise translate(exc, conn=conn, dsn=dsn) from exc


__all__ = [
    "AmbiguousTask",
    "BadInput",
    "Conflict",
    "ConnectionLost",
    "ErrorKind",
    "NotFound",
    "OpsError",
    "Refused",
    "TaskNotFound",
    "TimedOut",
    "UnknownQueue",
    "classify",
    "is_connection_lost",
    "kind_of",
    "message_for",
    "translate",
    "translated",
]
