"""What every command shares: exit codes, the user-facing error, the session.

A ``Session`` is one invocation's settings plus the database, opened on first use
and closed when the command ends.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..config import resolve_settings

if TYPE_CHECKING:
    import psycopg

    from ..db import Database

log = logging.getLogger(__name__)

PROG = "absurd-tui"
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """An error whose message is complete and meant for the user, with its exit code."""

    def __init__(self, message: str, code: int = EXIT_USAGE):
        super().__init__(message)
        self.code = code


def usage_error(message: str) -> CliError:
    return CliError(message, EXIT_USAGE)


def operation_failed(message: str) -> CliError:
    return CliError(message, EXIT_FAILED)


class Session:
    """What one invocation shares: settings, and the database opened on first use."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.settings = resolve_settings(dsn=args.dsn, data_dir=args.data_dir)
        self._database: Database | None = None
        self._conn: psycopg.Connection | None = None
        self._closers: list[Callable[[], None]] = []

    def database(self, *, install: bool = False) -> Database:
        if self._database is None or install:
            from ..db import open_database

            self._database = open_database(self.settings, install=install)
        return self._database

    def database_waiting(self, timeout: float | None) -> Database:
        """The database, waiting for it while it cannot be reached (a worker started
        before its server); ``timeout`` seconds bound the wait (None: no bound)."""
        if self._database is None:
            from ..db.wait import open_database_waiting

            database = open_database_waiting(self.settings, timeout=timeout)
            assert database is not None  # no stop event: only a timeout ends the wait
            self._database = database
        return self._database

    def connection(self) -> psycopg.Connection:
        """One autocommit connection for this command's reads and writes."""
        if self._conn is None:
            self._conn = self.database().connect()
            self._closers.append(self._conn.close)
        return self._conn

    @property
    def open_connection(self) -> psycopg.Connection | None:
        """The command's connection if it opened one (to tell whether it broke)."""
        return self._conn

    @property
    def dsn(self) -> str | None:
        """The DSN in use, once known (the embedded server's is known once started)."""
        return self._database.dsn if self._database is not None else self.settings.dsn

    @property
    def secret(self) -> str | None:
        """The DSN whose password must be scrubbed from anything we print."""
        return self.settings.dsn

    def close(self) -> None:
        while self._closers:
            closer = self._closers.pop()
            try:
                closer()
            except Exception:
                # Closing happens after the command's outcome is decided; a failure
                # here must not replace it.
                log.debug("error while closing", exc_info=True)


@dataclass(frozen=True)
class Command:
    """A top-level command: ``configure(parser)`` adds its arguments, ``run`` does it.

    ``run`` is None for a command that only groups subcommands (``queue``), whose
    subparsers set their own ``run`` default.
    """

    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, Session], int] | None = None
