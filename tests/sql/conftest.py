"""Databases for the engine tests: one of the test's own, recycled instead of re-cloned.

Cloning the template costs about 0.3 s per test on the embedded server (CREATE DATABASE
copies the whole catalog, DROP DATABASE removes it), which is most of this suite's run
time. Here `db_dsn` (which `conn` and `connect` build on) hands each test a database
nobody else is using, and afterwards returns it to the state of a fresh clone: every
session on it ends, every queue is dropped, sequences restart. The result is checked
against the template's catalog; anything that does not match (a test that created other
objects, a reset that failed) gets the database dropped and a fresh clone next time.
"""

from __future__ import annotations

import itertools
import os

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

_counter = itertools.count(1)

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


def _dsn_for(server_dsn: str, dbname: str) -> str:
    params = conninfo_to_dict(server_dsn)
    params["dbname"] = dbname
    return make_conninfo(**params)


def _fingerprint(dsn: str) -> str:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(_FINGERPRINT).fetchone()[0]


def _reset(server_dsn: str, dsn: str, dbname: str) -> None:
    """Bring a used database back to the state of a fresh clone of the template."""
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (dbname,),
        )
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET lock_timeout = '5s'")
        has_registry = conn.execute("SELECT to_regclass('absurd.queues') IS NOT NULL").fetchone()[0]
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
            left = conn.execute("SELECT count(*) FROM absurd.queues").fetchone()[0]
            assert left == 0, f"{left} queues survived the reset"


@pytest.fixture(scope="session")
def _database_pool(pg_server_dsn, template_db):
    """Databases cloned from the template, free for the next test; dropped at the end."""
    free: list[str] = []
    expected = _fingerprint(_dsn_for(pg_server_dsn, template_db))
    yield free, expected
    with psycopg.connect(pg_server_dsn, autocommit=True) as admin:
        for name in free:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def db_dsn(pg_server_dsn, template_db, _database_pool):
    """A database of this test's own, in the state of a fresh clone of the template."""
    free, expected = _database_pool
    if free:
        name = free.pop()
    else:
        name = f"absurd_s_{os.getpid()}_{next(_counter)}"
        with psycopg.connect(pg_server_dsn, autocommit=True) as admin:
            admin.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(template_db)
                )
            )
    dsn = _dsn_for(pg_server_dsn, name)
    yield dsn
    try:
        _reset(pg_server_dsn, dsn, name)
        reusable = _fingerprint(dsn) == expected
    except psycopg.Error:
        reusable = False  # whatever broke the reset, a fresh clone replaces this database
    if reusable:
        free.append(name)
    else:
        with psycopg.connect(pg_server_dsn, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
