"""Errors the db layer raises with text meant for the user, and the one classification
of database errors by SQLSTATE class.

``classify(exc, conn)`` is the only place that decides what a database error means; the
CLI, the console and the worker threads all ask it (``absurd_tui.ops.errors`` builds the
user-facing errors on top). Only ``ErrorKind.CONNECTION_LOST`` means "unreachable": a
statement timeout, a serialization failure or a deadlock leave the connection usable.
"""

from __future__ import annotations

from enum import Enum

import psycopg


class DatabaseError(Exception):
    """Base for errors whose message is a complete, user-facing explanation."""


class DatabaseUnavailable(DatabaseError):
    """The database cannot be reached (down, wrong host, refused, auth failed)."""


class SchemaError(DatabaseError):
    """The database has no Absurd schema, or one our tools cannot work with."""


class ErrorKind(Enum):
    """What a failed database operation means for whoever asked for it."""

    CONNECTION_LOST = "connection lost"
    """The server went away or cannot be reached: reconnect; nothing was changed."""
    TIMED_OUT = "timed out"
    """statement_timeout or lock_timeout cancelled the statement; the connection is fine."""
    CONFLICT = "conflict"
    """Serialization failure or deadlock: transient, the same request may succeed again."""
    NOT_FOUND = "not found"
    """The queue (its tables) or the object named does not exist."""
    BAD_INPUT = "bad input"
    """The values given are malformed (bad JSON, out of range, wrong type)."""
    REFUSED = "refused"
    """The engine understood the request and refused it (e.g. retry of a running task)."""

    @property
    def unreachable(self) -> bool:
        return self is ErrorKind.CONNECTION_LOST

    @property
    def transient(self) -> bool:
        """Trying the same thing again may work without anyone changing anything."""
        return self in (ErrorKind.CONNECTION_LOST, ErrorKind.TIMED_OUT, ErrorKind.CONFLICT)


# SQLSTATE codes (and classes, by their first two characters) in the order they are
# tested. Class 08 is connection exceptions; 57P01-57P05 are the server shutting the
# session (admin or crash shutdown, cannot connect now, database dropped, idle session
# timeout); 28 and 3D fail a connection attempt (authentication, no such database).
_CONNECTION_CLASSES = ("08", "28", "3D")
_CONNECTION_CODES = frozenset({"57P01", "57P02", "57P03", "57P04", "57P05"})
# 57014 query_canceled (statement_timeout, or a cancel request), 55P03
# lock_not_available (lock_timeout, NOWAIT), 25P03 idle_in_transaction_session_timeout.
_TIMEOUT_CODES = frozenset({"57014", "55P03", "25P03"})
# 40001 serialization_failure, 40P01 deadlock_detected; the rest of class 40 is also
# a rolled-back transaction that may be tried again.
_CONFLICT_CLASSES = ("40",)
# 42P01 undefined_table (a queue's tables are missing), 42883 undefined_function,
# 02000 no_data, P0002 no_data_found.
_NOT_FOUND_CODES = frozenset({"42P01", "42883", "02000", "P0002"})
# Class 22 is data exceptions (invalid JSON text, numeric out of range ...), 23 is
# constraint violations, 2201* and 22P02 included; the engine's value-too-large is 22001.
# AB003 is the engine refusing a retry strategy (upstream Absurd 0.5's code).
_BAD_INPUT_CLASSES = ("22", "23")
_BAD_INPUT_CODES = frozenset({"AB003"})


def classify(exc: BaseException, conn: psycopg.Connection | None = None) -> ErrorKind | None:
    """The kind of a database error, or None if ``exc`` is not one (a bug: let it crash).

    ``conn`` is the connection the error came from, when known: a connection left
    closed or broken means the connection was lost whatever the error says.
    """
    if isinstance(exc, DatabaseUnavailable):
        return ErrorKind.CONNECTION_LOST
    if conn is not None and (conn.closed or conn.broken):
        return ErrorKind.CONNECTION_LOST
    if isinstance(exc, psycopg.InterfaceError):
        return ErrorKind.CONNECTION_LOST  # "the connection is closed", "connection lost"
    if not isinstance(exc, psycopg.Error):
        return None
    code = exc.sqlstate
    if code is None:
        # No SQLSTATE: the client lost the server (or never reached it), or psycopg
        # refused to send something (a programming error it raised itself).
        if isinstance(exc, psycopg.OperationalError):
            return ErrorKind.CONNECTION_LOST
        return ErrorKind.BAD_INPUT if isinstance(exc, psycopg.DataError) else None
    if code in _CONNECTION_CODES or code.startswith(_CONNECTION_CLASSES):
        return ErrorKind.CONNECTION_LOST
    if code in _TIMEOUT_CODES:
        return ErrorKind.TIMED_OUT
    if code.startswith(_CONFLICT_CLASSES):
        return ErrorKind.CONFLICT
    if code in _NOT_FOUND_CODES:
        return ErrorKind.NOT_FOUND
    if code in _BAD_INPUT_CODES or code.startswith(_BAD_INPUT_CLASSES):
        return ErrorKind.BAD_INPUT
    return ErrorKind.REFUSED


def is_connection_lost(exc: BaseException, conn: psycopg.Connection | None = None) -> bool:
    """True when ``exc`` means the connection (not the statement) failed."""
    return classify(exc, conn) is ErrorKind.CONNECTION_LOST


def primary_message(exc: BaseException) -> str:
    """The server's one-line message for ``exc`` (without psycopg's context lines)."""
    if isinstance(exc, psycopg.Error) and exc.diag.message_primary:
        return exc.diag.message_primary
    return " ".join(str(exc).split()) or exc.__class__.__name__
