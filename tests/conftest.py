"""Real PostgreSQL for every test.

One server per test session: an embedded pgserver in a temporary directory, or the
server named by ABSURD_TEST_DSN. The schema is installed once into a template
database, and each test gets its own database cloned from it, so tests are isolated
and cheap. Names carry the pid so several test runs can share one server.

Helpers shared by the test directories (``wait_until``, the database functions these
fixtures use) are in tests/support.py.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from pathlib import Path

import psycopg
import pytest
from support import create_database, drop_database, dsn_for, fingerprint, reset_database

from absurd_tui.config import Settings
from absurd_tui.db import Database, schema

TEST_DSN_ENV = "ABSURD_TEST_DSN"
_counter = itertools.count(1)


@pytest.fixture(scope="session")
def pg_server_dsn():
    """A DSN for a maintenance database on the test server (used to create others)."""
    configured = os.environ.get(TEST_DSN_ENV)
    if configured:
        yield configured
        return
    from absurd_tui.db import embedded

    tmp = Path(tempfile.mkdtemp(prefix="absurd-tui-test-pg-"))
    server = embedded.get_server(tmp / "pgdata", cleanup_mode="delete")
    try:
        yield server.get_uri("postgres")
    finally:
        server.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def template_db(pg_server_dsn):
    """A database holding a freshly installed schema, used as the clone source."""
    name = f"absurd_tpl_{os.getpid()}"
    drop_database(pg_server_dsn, name)
    create_database(pg_server_dsn, name)
    with psycopg.connect(dsn_for(pg_server_dsn, name), autocommit=True) as conn:
        schema.install(conn)
    yield name
    drop_database(pg_server_dsn, name)


@pytest.fixture
def recycle_database() -> bool:
    """Whether ``db_dsn`` may hand out a used database brought back to the state of a
    fresh clone instead of a new clone.

    Cloning costs about 0.3 s per test on the embedded server (CREATE DATABASE copies
    the whole catalog, DROP DATABASE removes it). Directories of short tests that touch
    the database only from their own process (tests/sql) turn recycling on by overriding
    this fixture; elsewhere workers and subprocesses could outlive a test, and a dropped
    database is the only sure way to keep them out of the next one.
    """
    return False


@pytest.fixture(scope="session")
def _database_pool(pg_server_dsn, template_db):
    """Recycled databases free for the next test, and the template's fingerprint."""
    free: list[str] = []
    expected = fingerprint(dsn_for(pg_server_dsn, template_db))
    yield free, expected
    for name in free:
        drop_database(pg_server_dsn, name)


@pytest.fixture
def db_dsn(pg_server_dsn, template_db, _database_pool, recycle_database):
    """A DSN for a database of this test's own, in the state of a fresh clone of the
    template (the schema installed, no queues)."""
    free, expected = _database_pool
    if recycle_database and free:
        name = free.pop()
    else:
        name = f"absurd_t_{os.getpid()}_{next(_counter)}"
        create_database(pg_server_dsn, name, template=template_db)
    dsn = dsn_for(pg_server_dsn, name)
    yield dsn
    reusable = False
    if recycle_database:
        # The reset is checked against the template's catalog: anything that does not
        # match (a test that created other objects, a reset that failed) gets the
        # database dropped and a fresh clone next time.
        try:
            reset_database(pg_server_dsn, dsn, name)
            reusable = fingerprint(dsn) == expected
        except psycopg.Error:
            reusable = False  # whatever broke the reset, a fresh clone replaces this database
    if reusable:
        free.append(name)
    else:
        drop_database(pg_server_dsn, name)


@pytest.fixture
def empty_db_dsn(pg_server_dsn):
    """A DSN for an empty database of this test's own (no schema)."""
    name = f"absurd_e_{os.getpid()}_{next(_counter)}"
    create_database(pg_server_dsn, name)
    yield dsn_for(pg_server_dsn, name)
    drop_database(pg_server_dsn, name)


@pytest.fixture
def connect(db_dsn):
    """Factory for extra autocommit connections to this test's database; all closed after."""
    opened: list[psycopg.Connection] = []

    def _connect(**kwargs) -> psycopg.Connection:
        kwargs.setdefault("autocommit", True)
        conn = psycopg.connect(db_dsn, **kwargs)
        opened.append(conn)
        return conn

    yield _connect
    for conn in opened:
        conn.close()


@pytest.fixture
def conn(connect):
    """An autocommit connection to this test's database."""
    return connect()


@pytest.fixture
def database(db_dsn) -> Database:
    """This test's database as the application sees it (``absurd_tui.db.Database``)."""
    with psycopg.connect(db_dsn, autocommit=True) as c:
        info = schema.inspect(c)
    return Database(dsn=db_dsn, embedded=False, schema=info)


@pytest.fixture
def settings(db_dsn, tmp_path) -> Settings:
    return Settings(dsn=db_dsn, data_dir=tmp_path / "data")
