"""Connections for worker threads, and the back-off used while the database is away."""

from __future__ import annotations

import logging
import threading

import psycopg

from ..db.connect import connect
from ..db.dsn import scrub
from ..db.errors import is_connection_lost


def open_connection(dsn: str, application_name: str) -> psycopg.Connection:
    """A worker thread's own autocommit connection, from the one connection factory
    (TCP keepalives on). Failing to connect raises psycopg's error: workers log a
    short reason once and retry with back-off."""
    return connect(dsn, application_name=application_name, explain_failure=False)


def close_quietly(conn: psycopg.Connection | None) -> None:
    if conn is None:
        return
    try:
        conn.close()
    except Exception:
        # Closing a connection that already failed can raise again; it is gone either way.
        pass


def is_connection_error(err: BaseException, conn: psycopg.Connection | None = None) -> bool:
    """True when ``err`` means the connection (not the statement) failed: the one
    classification by SQLSTATE (``absurd_tui.db.errors.classify``)."""
    return is_connection_lost(err, conn)


def describe_error(err: BaseException, dsn: str) -> str:
    text = " ".join(str(err).split()) or err.__class__.__name__
    return scrub(text, dsn)


class Backoff:
    """Exponential delays between reconnection attempts, interruptible by ``stop``."""

    def __init__(self, stop: threading.Event, initial: float = 0.25, maximum: float = 5.0) -> None:
        self._stop = stop
        self._initial = initial
        self._maximum = maximum
        self._delay = initial

    @property
    def next_delay(self) -> float:
        return self._delay

    def wait(self) -> bool:
        """Sleep the current delay and grow it; False if stopping."""
        delay = self._delay
        self._delay = min(self._delay * 2, self._maximum)
        return not self._stop.wait(delay)

    def reset(self) -> None:
        self._delay = self._initial


class OutageLog:
    """Logs a lost connection once, and its recovery once, instead of every retry."""

    def __init__(self, logger: logging.Logger, what: str) -> None:
        self._logger = logger
        self._what = what
        self._down = False

    def down(self, reason: str, retry_in: float) -> None:
        if not self._down:
            self._down = True
            self._logger.warning(
                "%s lost its database connection (%s); retrying in %.1f s",
                self._what,
                reason,
                retry_in,
            )
        else:
            self._logger.debug("%s still disconnected (%s)", self._what, reason)

    def up(self) -> None:
        if self._down:
            self._down = False
            self._logger.info("%s reconnected", self._what)
