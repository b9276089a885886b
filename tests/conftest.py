"""Real PostgreSQL for every test.

One server per test session: an embedded pgserver in a temporary directory, or the
server named by ABSURD_TEST_DSN. The schema is installed once into a template
database, and each test gets its own database cloned from it, so tests are isolated
and cheap. Names carry the pid so several test runs can share one server.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from absurd_tui.config import Settings
from absurd_tui.db import Database, schema

TEST_DSN_ENV = "ABSURD_TEST_DSN"
_counter = itertools.count(1)


def _dsn_for(server_dsn: str, dbname: str) -> str:
    params = conninfo_to_dict(server_dsn)
    params["dbname"] = dbname
    return make_conninfo(**params)


@pytest.fixture(scope="session")
def pg_server_dsn():
    """A DSN for a maintenance database on the test server (used to create others)."""
    configured = os.environ.get(TEST_DSN_ENV)
    if configured:
        yield configured
        return
    from absurd_tui.db.embedded import import_pgserver

    pgserver = import_pgserver()
    tmp = Path(tempfile.mkdtemp(prefix="absurd-tui-test-pg-"))
    server = pgserver.get_server(tmp / "pgdata", cleanup_mode="delete")
    try:
        yield server.get_uri("postgres")
    finally:
        server.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def template_db(pg_server_dsn):
    """A database holding a freshly installed schema, used as the clone source."""
    name = f"absurd_tpl_{os.getpid()}"
    with psycopg.connect(pg_server_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with psycopg.connect(_dsn_for(pg_server_dsn, name), autocommit=True) as conn:
        schema.install(conn)
    yield name
    with psycopg.connect(pg_server_dsn, autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture
def db_dsn(pg_server_dsn, template_db):
    """A DSN for a database of this test's own, with the schema installed."""
    name = f"absurd_t_{os.getpid()}_{next(_counter)}"
    with psycopg.connect(pg_server_dsn, autocommit=True) as admin:
        admin.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template_db)
            )
        )
    yield _dsn_for(pg_server_dsn, name)
    with psycopg.connect(pg_server_dsn, autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture
def empty_db_dsn(pg_server_dsn):
    """A DSN for an empty database of this test's own (no schema)."""
    name = f"absurd_e_{os.getpid()}_{next(_counter)}"
    with psycopg.connect(pg_server_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield _dsn_for(pg_server_dsn, name)
    with psycopg.connect(pg_server_dsn, autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


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


@pytest.fixture(scope="session")
def sandbox():
    """The code interpreter's backend, ready to run. The first run on a machine compiles
    its runtime into the user cache (a minute or two, once); later runs load it (~1 s)."""
    from absurd_tui.agent.sandbox import default_sandbox

    backend = default_sandbox()
    backend.warm_up()
    return backend
