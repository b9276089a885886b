"""The one connection factory: keepalives, statement timeout, clear failures."""

from __future__ import annotations

import psycopg
import pytest

from absurd_tui.db.connect import KEEPALIVE_IDLE, connect, connection_kwargs
from absurd_tui.db.errors import DatabaseUnavailable


def test_connections_carry_keepalives_and_a_name(db_dsn):
    with connect(db_dsn, application_name="absurd-tui test") as conn:
        params = conn.pgconn.info
        options = {o.keyword.decode(): (o.val or b"").decode() for o in params}
        assert options["keepalives"] == "1"
        assert options["keepalives_idle"] == str(KEEPALIVE_IDLE)
        name = conn.execute("SELECT current_setting('application_name')").fetchone()[0]
        assert name == "absurd-tui test"
        assert conn.autocommit


def test_statement_timeout_is_a_parameter(db_dsn):
    with connect(db_dsn, statement_timeout_ms=150) as conn:
        assert conn.execute("SHOW statement_timeout").fetchone() == ("150ms",)
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute("SELECT pg_sleep(5)")
        assert conn.execute("SELECT 1").fetchone() == (1,)
    with connect(db_dsn) as conn:
        assert conn.execute("SHOW statement_timeout").fetchone() == ("0",)


def test_keepalives_can_be_turned_off_for_a_pool():
    assert "keepalives" not in connection_kwargs(keepalive_idle=None)
    assert connection_kwargs()["keepalives_idle"] == KEEPALIVE_IDLE


def test_failure_to_connect_is_explained_or_raw():
    dsn = "postgresql://nobody:secret@127.0.0.1:1/none"
    with pytest.raises(DatabaseUnavailable) as caught:
        connect(dsn, connect_timeout=2)
    assert "Cannot connect to PostgreSQL" in str(caught.value)
    assert "secret" not in str(caught.value)
    with pytest.raises(psycopg.OperationalError):
        connect(dsn, connect_timeout=2, explain_failure=False)
