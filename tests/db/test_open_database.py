"""Opening a database: schema checks, installs, versions and unreachable servers."""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from absurd_tui.config import Settings
from absurd_tui.db import DatabaseUnavailable, SchemaError, embedded, open_database, schema


def _fake_version(dsn: str, version: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA absurd")
        conn.execute(
            sql.SQL(
                "CREATE FUNCTION absurd.get_schema_version() RETURNS text LANGUAGE sql AS $$ SELECT {}::text $$"
            ).format(sql.Literal(version))
        )


def test_missing_schema_on_a_dsn_is_reported_with_the_init_command(empty_db_dsn):
    with pytest.raises(SchemaError) as err:
        open_database(Settings(dsn=empty_db_dsn))
    assert "absurd-tui init" in str(err.value)
    with psycopg.connect(empty_db_dsn) as conn:
        assert conn.execute("SELECT to_regnamespace('absurd')").fetchone()[0] is None, (
            "must not install silently"
        )


def test_init_installs_the_schema_and_reports_our_revision(empty_db_dsn):
    db = open_database(Settings(dsn=empty_db_dsn), install=True)
    assert db.schema.is_ours
    assert db.schema.revision == schema.SCHEMA_REVISION
    assert "absurd-tui schema revision" in db.schema.label()
    with psycopg.connect(empty_db_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM absurd.list_queues()").fetchone()[0] == 0


def test_installed_schema_opens_without_changes(db_dsn):
    db = open_database(Settings(dsn=db_dsn))
    assert db.schema.current
    assert db.label.endswith("/" + psycopg.conninfo.conninfo_to_dict(db_dsn)["dbname"])


def test_older_revision_of_ours_asks_for_init(empty_db_dsn):
    _fake_version(empty_db_dsn, "0.4.0+absurd-tui.0")
    with pytest.raises(SchemaError) as err:
        open_database(Settings(dsn=empty_db_dsn))
    assert "older" in str(err.value) and "absurd-tui init" in str(err.value)


def test_newer_revision_of_ours_asks_to_upgrade_the_tool(empty_db_dsn):
    _fake_version(empty_db_dsn, f"0.4.0+absurd-tui.{schema.SCHEMA_REVISION + 1}")
    with pytest.raises(SchemaError) as err:
        open_database(Settings(dsn=empty_db_dsn))
    assert "Upgrade absurd-tui" in str(err.value)


@pytest.mark.parametrize("version", ["main", "0.4.0", "0.5.1"])
def test_upstream_schema_from_0_4_is_accepted(empty_db_dsn, version):
    _fake_version(empty_db_dsn, version)
    db = open_database(Settings(dsn=empty_db_dsn))
    assert not db.schema.is_ours
    assert db.schema.upstream_compatible


def test_old_upstream_schema_error_names_both_versions(empty_db_dsn):
    _fake_version(empty_db_dsn, "0.3.2")
    with pytest.raises(SchemaError) as err:
        open_database(Settings(dsn=empty_db_dsn))
    assert "0.3.2" in str(err.value) and "0.4" in str(err.value)


def test_unreachable_server_gives_one_paragraph_without_password():
    dsn = "postgresql://alice:hunter2secret@127.0.0.1:1/nowhere"
    with pytest.raises(DatabaseUnavailable) as err:
        open_database(Settings(dsn=dsn))
    text = str(err.value)
    assert "127.0.0.1" in text
    assert "hunter2secret" not in text
    assert "\n" not in text


def test_reapplying_the_schema_keeps_data(db_dsn):
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute("SELECT absurd.create_queue('keep')")
        task_id = conn.execute(
            "SELECT task_id FROM absurd.spawn_task('keep', 'job', '{\"n\": 1}'::jsonb)"
        ).fetchone()[0]
        schema.install(conn)
        schema.install(conn)
        row = conn.execute(
            "SELECT task_name, params->>'n' FROM absurd.t_keep WHERE task_id = %s", (task_id,)
        ).fetchone()
        assert row == ("job", "1")
        claimed = conn.execute(
            "SELECT task_id FROM absurd.claim_task('keep', 'w', 30, 1)"
        ).fetchall()
        assert [r[0] for r in claimed] == [task_id]


def test_embedded_server_starts_installs_and_is_shared():
    """The default: a private server in the data directory, usable by another process too."""
    data_dir = Path(tempfile.mkdtemp(prefix="absurd-tui-embedded-")) / "data"
    try:
        _check_embedded(data_dir)
    finally:
        embedded.release(data_dir / "pgdata")
        shutil.rmtree(data_dir.parent, ignore_errors=True)


def _check_embedded(data_dir: Path) -> None:
    db = open_database(Settings(dsn=None, data_dir=data_dir))
    assert db.embedded and db.label == "embedded"
    assert db.schema.current
    other = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from absurd_tui.config import Settings; from absurd_tui.db import open_database;"
            "db = open_database(Settings(dsn=None, data_dir=sys.argv[1]));"
            "c = db.connect(); print(c.execute('select absurd.get_schema_version()').fetchone()[0])",
            str(data_dir),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert other.returncode == 0, other.stderr
    assert other.stdout.strip() == db.schema.version
    with db.connect() as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
