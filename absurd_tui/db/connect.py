"""Opening the database: resolve the DSN, start the embedded server, check the schema.

``open_database(settings)`` is the one entry point the CLI, the TUI and the workers
use. It returns a ``Database`` that knows its DSN, a password-free label for the UI
and logs, and how to make connections and pools.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg_pool import ConnectionPool

from ..config import Settings
from . import dsn as dsn_text
from . import embedded, schema
from .errors import DatabaseUnavailable

CONNECT_TIMEOUT = 5
APPLICATION_NAME = "absurd-tui"


@dataclass(frozen=True)
class Database:
    dsn: str
    embedded: bool
    schema: schema.SchemaInfo

    @property
    def label(self) -> str:
        """Where we are connected, for the status bar and logs: never a password."""
        if self.embedded:
            return "embedded"
        return dsn_text.describe(self.dsn)

    def connect(self, *, autocommit: bool = True, **kwargs) -> psycopg.Connection:
        return connect(self.dsn, autocommit=autocommit, **kwargs)

    def pool(
        self, *, min_size: int = 1, max_size: int = 4, name: str | None = None
    ) -> ConnectionPool:
        """A pool of autocommit connections; the caller closes it."""
        return ConnectionPool(
            self.dsn,
            min_size=min_size,
            max_size=max_size,
            kwargs=_connect_kwargs(autocommit=True),
            check=ConnectionPool.check_connection,
            name=name,
            open=True,
        )


def _connect_kwargs(**extra) -> dict:
    kwargs = {"connect_timeout": CONNECT_TIMEOUT, "application_name": APPLICATION_NAME}
    kwargs.update(extra)
    return kwargs


def connect(dsn: str, *, autocommit: bool = True, **kwargs) -> psycopg.Connection:
    """psycopg.connect with our defaults and a user-facing error when it fails."""
    dsn_text.check(dsn)
    try:
        return psycopg.connect(dsn, **_connect_kwargs(autocommit=autocommit, **kwargs))
    except psycopg.OperationalError as exc:
        raise unavailable(dsn, exc) from exc


def unavailable(dsn: str, exc: BaseException) -> DatabaseUnavailable:
    """The one-paragraph explanation of why ``dsn`` cannot be reached."""
    reason = " ".join(str(exc).split()) or exc.__class__.__name__
    reason = dsn_text.scrub(reason, dsn)
    return DatabaseUnavailable(
        f"Cannot connect to PostgreSQL at {dsn_text.describe(dsn)}: {reason}. "
        "Check that the server is running and accepts connections from this machine, "
        "and that the connection string (--dsn or ABSURD_DATABASE_URL) names the right "
        "host, port, database, user and password. Without either, absurd-tui starts its "
        "own embedded PostgreSQL."
    )


def open_database(settings: Settings, *, install: bool = False) -> Database:
    """Resolve and check the database described by ``settings``.

    ``install=True`` (`absurd-tui init`) applies sql/absurd.sql unconditionally. The
    embedded server gets it applied automatically when its schema is missing or older.
    A server given by DSN is otherwise never altered: a missing or unusable schema
    raises SchemaError naming the command that fixes it.
    """
    if settings.embedded:
        target_dsn = embedded.start(settings.pgdata)
        target = "embedded"
    else:
        assert settings.dsn is not None
        target_dsn = settings.dsn
        target = dsn_text.describe(target_dsn)
    with connect(target_dsn) as conn:
        info = schema.inspect(conn)
        stale = not info.is_ours or (info.revision or 0) < schema.SCHEMA_REVISION
        if install or (settings.embedded and stale):
            info = schema.install(conn)
        schema.check_usable(info, target=target)
    return Database(dsn=target_dsn, embedded=settings.embedded, schema=info)
