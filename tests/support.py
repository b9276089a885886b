"""Helpers shared by every test directory: waiting for a condition, and test databases.

The fixtures built on these live in tests/conftest.py. Test modules import this one as
``support`` (pytest puts tests/ on the import path, as for ``sdk.helpers``).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

T = TypeVar("T")

# -- waiting ---------------------------------------------------------------------------


class _Deadline:
    def __init__(self, timeout: float, what: str) -> None:
        self.timeout = timeout
        self.what = what
        self.at = time.monotonic() + timeout

    def check(self) -> None:
        if time.monotonic() > self.at:
            raise AssertionError(f"timed out after {self.timeout} s waiting for {self.what}")


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 10.0,
    what: str = "condition",
    *,
    interval: float = 0.02,
) -> T:
    """Poll ``predicate`` until it returns something truthy, and return that; fail with
    ``what`` once ``timeout`` seconds have passed. Tests wait for conditions, never for a
    fixed sleep."""
    deadline = _Deadline(timeout, what)
    while True:
        value = predicate()
        if value:
            return value
        deadline.check()
        time.sleep(interval)


class _Pilot(Protocol):
    def pause(self, delay: float | None = None) -> Awaitable[None]: ...


async def pilot_wait_until(
    pilot: _Pilot, condition: Callable[[], T], what: str, timeout: float = 20.0
) -> T:
    """``wait_until`` for Pilot tests: the app keeps running between the polls."""
    deadline = _Deadline(timeout, what)
    while True:
        value = condition()
        if value:
            return value
        deadline.check()
        await pilot.pause(0.05)


# -- test databases --------------------------------------------------------------------


def dsn_for(server_dsn: str, dbname: str) -> str:
    """``server_dsn`` with its database name replaced."""
    params = conninfo_to_dict(server_dsn)
    params["dbname"] = dbname
    return make_conninfo(**params)


def create_database(server_dsn: str, name: str, template: str | None = None) -> None:
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            query += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        admin.execute(query)


def drop_database(server_dsn: str, name: str) -> None:
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


# Everything a test could leave behind that a fresh clone would not have: the relations
# and routines of every non-system schema (by name and definition), installed extensions
# and per-database settings. Queue rows and sequences are reset explicitly.
_FINGERPRINT = """
SELECT md5(coalesce((
        SELECT string_agg(n.nspname || '.' || c.relname || ':' || c.relkind::text, ','
                          ORDER BY n.nspname, c.relname)
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
           AND n.nspname NOT LIKE 'pg_temp%' AND n.nspname NOT LIKE 'pg_toast_temp%'), '')
    || '|' || coalesce((
        SELECT string_agg(p.oid::regprocedure::text || ':' || md5(p.prosrc), ','
                          ORDER BY p.oid::regprocedure::text)
          FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')), '')
    || '|' || coalesce((SELECT string_agg(extname, ',' ORDER BY extname) FROM pg_extension), '')
    || '|' || coalesce((
        SELECT string_agg(array_to_string(s.setconfig, ','), ';' ORDER BY s.setrole)
          FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase
         WHERE d.datname = current_database()), ''))
"""


def fingerprint(dsn: str) -> str:
    """A digest of the database's schema objects, to compare with the template's."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(_FINGERPRINT).fetchone()
    assert row is not None
    digest: str = row[0]
    return digest


def reset_database(server_dsn: str, dsn: str, dbname: str) -> None:
    """Bring a used database back to the state of a fresh clone of the template."""
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (dbname,),
        )
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET lock_timeout = '5s'")
        has_registry = _scalar(conn, "SELECT to_regclass('absurd.queues') IS NOT NULL")
        if has_registry:
            with conn.transaction():
                for (name,) in conn.execute("SELECT queue_name FROM absurd.queues").fetchall():
                    conn.execute("SELECT absurd.drop_queue(%s)", (name,))
        for (sequence,) in conn.execute(
            "SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relkind = 'S' AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
        ).fetchall():
            conn.execute(sql.SQL("ALTER SEQUENCE {} RESTART").format(sql.SQL(sequence)))
        if has_registry:
            left = _scalar(conn, "SELECT count(*) FROM absurd.queues")
            assert left == 0, f"{left} queues survived the reset"


def _scalar(conn: psycopg.Connection, query: Any) -> Any:
    row = conn.execute(query).fetchone()
    assert row is not None
    return row[0]


def table_contents(conn: psycopg.Connection) -> dict[str, str]:
    """Every table of the absurd schema with a digest of its whole contents, so a test
    can show that a refused call changed nothing."""
    names = [
        row[0]
        for row in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'absurd' ORDER BY tablename"
        )
    ]
    digests = {}
    for name in names:
        query = sql.SQL(
            "SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, ',' ORDER BY t::text)), '')"
            " FROM absurd.{} t"
        ).format(sql.Identifier(name))
        row = conn.execute(query).fetchone()
        assert row is not None
        digests[name] = row[0]
    return digests


# -- a database that comes up later -------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Proxy:
    """A TCP port that forwards to the test server once ``start``ed: the database
    "coming up" at an address where nothing listened before."""

    def __init__(self, target_dsn: str, port: int):
        params = conninfo_to_dict(target_dsn)
        host = params.get("host") or "localhost"
        target_port = int(params.get("port") or 5432)
        if host.startswith("/"):
            self._target = (socket.AF_UNIX, f"{host}/.s.PGSQL.{target_port}")
        else:
            self._target = (socket.AF_INET, (host, target_port))
        self.port = port
        self._server: socket.socket | None = None

    def start(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen()
        self._server = server
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        assert self._server is not None
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.socket(self._target[0])
            upstream.connect(self._target[1])
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        if self._server is not None:
            self._server.close()


def via_port(dsn: str, port: int) -> str:
    params = conninfo_to_dict(dsn)
    params.update(host="127.0.0.1", port=str(port))
    return make_conninfo(**params)
