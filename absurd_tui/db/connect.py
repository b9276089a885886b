"""Opening the database: resolve the DSN, start the embedded server, check the schema.

``open_database(settings)`` is the one entry point the CLI, the TUI and the workers
use. It returns a ``Database`` that knows its DSN, a password-free label for the UI
and logs, and how to make connections and pools.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from ..config import Settings
from . import dsn as dsn_text
from . import embedded, schema
from .errors import DatabaseUnavailable

CONNECT_TIMEOUT = 5
APPLICATION_NAME = "absurd-tui"
KEEPALIVE_IDLE = 10
"""Seconds of silence before TCP keepalive probes start; with KEEPALIVE_INTERVAL and
KEEPALIVE_COUNT, a silently vanished server (network loss, a half-open connection)
surfaces as an error within about 25 s instead of a query hanging for minutes.
Unix sockets ignore keepalives."""
KEEPALIVE_INTERVAL = 5
KEEPALIVE_COUNT = 3


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

    def connect(
        self,
        *,
        autocommit: bool = True,
        application_name: str = APPLICATION_NAME,
        statement_timeout_ms: int | None = None,
        connect_timeout: int = CONNECT_TIMEOUT,
    ) -> psycopg.Connection:
        return connect(
            self.dsn,
            autocommit=autocommit,
            application_name=application_name,
            statement_timeout_ms=statement_timeout_ms,
            connect_timeout=connect_timeout,
        )

    def pool(
        self, *, min_size: int = 1, max_size: int = 4, name: str | None = None
    ) -> ConnectionPool:
        """A pool of autocommit connections; the caller closes it."""
        return ConnectionPool(
            self.dsn,
            min_size=min_size,
            max_size=max_size,
            kwargs=connection_kwargs(autocommit=True),
            check=ConnectionPool.check_connection,
            name=name,
            open=True,
        )


def connection_kwargs(
    *,
    autocommit: bool = True,
    application_name: str = APPLICATION_NAME,
    connect_timeout: int = CONNECT_TIMEOUT,
    keepalive_idle: int | None = KEEPALIVE_IDLE,
) -> dict[str, Any]:
    """The arguments every connection of ours is opened with (for psycopg.connect and
    for psycopg_pool's ``kwargs``): timeouts, keepalives, a name for pg_stat_activity."""
    kwargs: dict[str, Any] = {
        "autocommit": autocommit,
        "connect_timeout": connect_timeout,
        # PostgreSQL cuts application_name to 63 bytes; cut it here so it reads the same.
        "application_name": application_name[:63],
    }
    if keepalive_idle is not None:
        kwargs.update(
            keepalives=1,
            keepalives_idle=keepalive_idle,
            keepalives_interval=KEEPALIVE_INTERVAL,
            keepalives_count=KEEPALIVE_COUNT,
        )
    return kwargs


def connect(
    dsn: str,
    *,
    autocommit: bool = True,
    application_name: str = APPLICATION_NAME,
    connect_timeout: int = CONNECT_TIMEOUT,
    keepalive_idle: int | None = KEEPALIVE_IDLE,
    statement_timeout_ms: int | None = None,
    explain_failure: bool = True,
) -> psycopg.Connection:
    """The one way absurd-tui opens a connection (console, CLI, workers, agent).

    ``statement_timeout_ms`` bounds every statement of the session (None: the
    server's setting). A failure to connect raises DatabaseUnavailable with the
    whole explanation, or with ``explain_failure=False`` psycopg's own error (the
    workers log a short reason and retry).
    """
    dsn_text.check(dsn)
    kwargs = connection_kwargs(
        autocommit=autocommit,
        application_name=application_name,
        connect_timeout=connect_timeout,
        keepalive_idle=keepalive_idle,
    )
    try:
        conn = psycopg.connect(dsn, **kwargs)
    except psycopg.OperationalError as exc:
        if not explain_failure:
            raise
        raise unavailable(dsn, exc) from exc
    if statement_timeout_ms is not None:
        set_statement_timeout(conn, statement_timeout_ms)
    return conn


def set_statement_timeout(conn: psycopg.Connection, milliseconds: int) -> None:
    """Bound every later statement of the session (0 means no limit)."""
    conn.execute("SELECT set_config('statement_timeout', %s, false)", (f"{int(milliseconds)}ms",))
    if not conn.autocommit:
        conn.commit()


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
