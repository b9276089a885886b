"""The official SDK scenarios run twice: on our engine, and on upstream Absurd 0.5.1's own
schema. A scenario asserts the same observable results on both, so any difference in what
an official client sees is a failure on one of them."""

from __future__ import annotations

import itertools
import os

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from . import upstream

SCHEMAS = ("absurd-tui", "upstream-0.5.1")
_counter = itertools.count(1)


@pytest.fixture(params=SCHEMAS)
def schema_under_test(request) -> str:
    return request.param


@pytest.fixture
def db_dsn(request, schema_under_test):
    """This test's database: a clone of our installed schema, or upstream 0.5.1 installed
    into an empty database."""
    if schema_under_test == "absurd-tui":
        return request.getfixturevalue("_our_db_dsn")
    dsn = request.getfixturevalue("empty_db_dsn")
    with psycopg.connect(dsn, autocommit=True) as conn:
        upstream.install(conn, "0.5.1")
    return dsn


@pytest.fixture
def _our_db_dsn(pg_server_dsn, template_db):
    name = f"absurd_i_{os.getpid()}_{next(_counter)}"
    with psycopg.connect(pg_server_dsn, autocommit=True) as admin:
        admin.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template_db)
            )
        )
    params = conninfo_to_dict(pg_server_dsn)
    params["dbname"] = name
    yield make_conninfo(**params)
    with psycopg.connect(pg_server_dsn, autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
