"""Every function of upstream 0.5.1 exists here under the same name, with the same
parameter names, defaults and result columns, so positional and named-argument callers
alike work on both. The differences are deliberate widenings, listed here and nowhere else
accepted."""

from __future__ import annotations

import os

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from absurd_tui.db import schema

from . import upstream

SIGNATURES = """
SELECT p.proname,
       pg_get_function_arguments(p.oid),
       pg_get_function_result(p.oid)
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'absurd'
ORDER BY 1, 2
"""

# Ours accepts fractional seconds (integers still resolve to it); await_event returns a
# trailing timed_out column and takes p_durable_timeout, which only our SDK passes.
WIDENED = {
    "await_event": (
        "p_queue_name text, p_task_id uuid, p_run_id uuid, p_step_name text, p_event_name text,"
        " p_timeout double precision DEFAULT NULL::double precision,"
        " p_durable_timeout boolean DEFAULT false",
        "TABLE(should_suspend boolean, payload jsonb, timed_out boolean)",
    ),
    "extend_claim": (
        "p_queue_name text, p_run_id uuid, p_extend_by double precision",
        "void",
    ),
}


def signatures(dsn: str, install) -> dict[str, set[tuple[str, str]]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        install(conn)
        out: dict[str, set[tuple[str, str]]] = {}
        for name, arguments, result in conn.execute(SIGNATURES).fetchall():
            out.setdefault(name, set()).add((arguments, result))
        return out


def test_every_upstream_function_is_here_with_the_same_signature(pg_server_dsn, empty_db_dsn):
    theirs = signatures(empty_db_dsn, lambda conn: upstream.install(conn, "0.5.1"))
    dbname = f"absurd_sig_{os.getpid()}"
    name = sql.Identifier(dbname)
    with psycopg.connect(pg_server_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(name))
    try:
        params = conninfo_to_dict(pg_server_dsn)
        params["dbname"] = dbname
        ours = signatures(make_conninfo(**params), schema.install)
    finally:
        with psycopg.connect(pg_server_dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
    missing = sorted(set(theirs) - set(ours))
    assert missing == []
    for name, variants in sorted(theirs.items()):
        expected = {WIDENED[name]} if name in WIDENED else variants
        assert ours[name] == expected, name
