"""Parsing, the entry points, and the database errors every command shares."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from .helpers import assert_clean_error, cli_env

COMMANDS = [
    "init",
    "dsn",
    "queue",
    "spawn",
    "emit",
    "retry",
    "cancel",
    "tasks",
    "show",
    "events",
    "workers",
    "worker",
]
UNREACHABLE = "postgresql://u:secret@127.0.0.1:1/x"


def test_help_lists_every_command(bare_cli):
    result = bare_cli("--help", dsn=False)
    assert result.code == 0, result
    for name in COMMANDS:
        assert f"\n    {name} " in result.out, name


def test_console_script_runs_the_cli(tmp_path):
    script = Path(sys.executable).with_name("absurd-tui")
    proc = subprocess.run(
        [str(script), "--version"],
        capture_output=True,
        text=True,
        env=cli_env(tmp_path),
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("absurd-tui ")


def test_unknown_command_is_bad_usage(bare_cli):
    result = bare_cli.process("frobnicate")
    assert_clean_error(result, 2, "invalid choice")


def test_console_options_before_a_command_are_refused(cli, default_queue):
    result = cli("--workers", "3", "tasks")
    assert_clean_error(result, 2, "--workers", "tasks")


def test_global_options_go_before_or_after_the_command(cli, default_queue):
    before = cli("--dsn", cli.dsn, "queue", "list", dsn=False)
    after = cli("queue", "list", "--dsn", cli.dsn, dsn=False)
    assert before.code == after.code == 0, (before, after)
    assert before.out == after.out
    assert "default" in before.out


def test_dsn_from_the_environment(cli, default_queue):
    result = cli("queue", "list", dsn=False, env={"ABSURD_DATABASE_URL": cli.dsn})
    assert result.code == 0, result
    assert "default" in result.out


@pytest.mark.parametrize(
    "args",
    [
        ("init",),
        ("queue", "list"),
        ("spawn", "send-mail", "--params", "{}"),
        ("emit", "paid"),
        ("retry", "0190abcd"),
        ("cancel", "0190abcd"),
        ("tasks",),
        ("show", "0190abcd"),
        ("events",),
        ("workers",),
        # A worker waits for its database unless told not to.
        ("worker", "--connect-timeout", "0"),
    ],
    ids=lambda args: args[0] if len(args) == 1 or args[0] != "queue" else "queue-list",
)
def test_unreachable_database_is_one_paragraph_naming_the_host(bare_cli, args):
    result = bare_cli(*args, dsn=UNREACHABLE)
    assert_clean_error(result, 2, "127.0.0.1")
    assert "secret" not in result.err + result.out
    # One paragraph, after the warning that the password is on the command line.
    lines = result.err.strip().splitlines()
    assert len(lines) == 2 and "the password given with --dsn" in lines[0], result


def test_unreachable_database_in_a_real_process_exits_2_with_one_line(bare_cli):
    result = bare_cli.process("spawn", "send-mail", dsn=UNREACHABLE)
    assert_clean_error(result, 2, "127.0.0.1")
    assert "secret" not in result.err + result.out
    # One line, after the warning that the password is on the command line.
    lines = result.err.strip().splitlines()
    assert len(lines) == 2 and "the password given with --dsn" in lines[0], result


def test_verbose_logs_the_traceback_without_the_password(bare_cli):
    result = bare_cli.process("-v", "tasks", dsn=UNREACHABLE)
    assert result.code == 2, result
    assert "Traceback" in result.err
    assert "secret" not in result.err + result.out


def test_database_without_schema_points_to_init(bare_cli, empty_db_dsn):
    result = bare_cli("tasks", dsn=empty_db_dsn)
    assert_clean_error(result, 2, "absurd-tui init")


def test_init_installs_the_schema_and_prints_its_version(bare_cli, empty_db_dsn):
    first = bare_cli("init", dsn=empty_db_dsn)
    assert first.code == 0, first
    with psycopg.connect(empty_db_dsn) as conn:
        version = conn.execute("SELECT absurd.get_schema_version()").fetchone()[0]
    assert version in first.out
    assert version == "0.5.1"
    assert "absurd-tui engine revision 2" in first.out
    again = bare_cli("init", dsn=empty_db_dsn)
    assert again.code == 0, again
    assert version in again.out
    shown = bare_cli("dsn", dsn=empty_db_dsn)
    assert shown.code == 0, shown
    assert "0.5.1 (absurd-tui engine revision 2)" in shown.err


def test_dsn_prints_the_configured_dsn_without_its_password(bare_cli):
    uri = "postgresql://alice:s3cret@db.example.com:5433/app?sslmode=require"
    result = bare_cli("dsn", dsn=uri)
    assert result.code == 0, result
    assert result.out == "postgresql://alice@db.example.com:5433/app?sslmode=require\n"
    shown = bare_cli("dsn", "--show-password", dsn=uri)
    assert shown.out == uri + "\n"
    keywords = bare_cli("dsn", dsn="host=db.example.com user=alice password=s3cret dbname=app")
    assert keywords.code == 0, keywords
    assert "s3cret" not in keywords.out
    assert "host=db.example.com" in keywords.out and "dbname=app" in keywords.out
    in_query = bare_cli("dsn", dsn="postgresql:///app?host=/run/pg&password=s3cret&user=bob")
    assert "s3cret" not in in_query.out and "host=/run/pg" in in_query.out


def test_embedded_server_is_the_default(bare_cli, tmp_path):
    """Without --dsn, init and dsn use the embedded server in --data-dir."""
    from absurd_tui.db import embedded

    data_dir = tmp_path / "embedded"
    init = bare_cli.process("init", "--data-dir", str(data_dir), dsn=False, timeout=120)
    assert init.code == 0, init
    assert "embedded" in init.out
    # Hold the server the way a running console or worker would, so the DSN that
    # `dsn` prints can be used after it exits.
    server = embedded.get_server(data_dir / "pgdata", cleanup_mode="stop")
    try:
        result = bare_cli.process("dsn", "--data-dir", str(data_dir), dsn=False, timeout=120)
        assert result.code == 0, result
        dsn = result.out.strip()
        assert str(data_dir) in dsn
        with psycopg.connect(dsn) as conn:
            version = conn.execute("SELECT absurd.get_schema_version()").fetchone()[0]
        assert version in init.out
    finally:
        server.cleanup()


def test_console_reports_problems_before_taking_over_the_terminal(bare_cli):
    # (A server that is merely down is waited for inside the console: tests/ui.)
    unparsable = bare_cli.process("--no-workers", dsn="postgresql://u:secret%zz@127.0.0.1:1/x")
    assert_clean_error(unparsable, 2, "The connection string cannot be parsed")
    assert "secret" not in unparsable.err
    assert_clean_error(
        bare_cli.process("--tasks", "no_such_module_xyz", dsn=UNREACHABLE),
        2,
        "no_such_module_xyz",
    )


def test_commands_other_than_the_console_never_import_textual(cli, default_queue):
    code = (
        "import sys\n"
        "from absurd_tui.cli import main\n"
        "for args in (['tasks'], ['queue', 'list'], ['events', '--json'], ['spawn', 'x', '-q', 'default']):\n"
        f"    assert main([*args, '--dsn', {cli.dsn!r}]) == 0, args\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'textual'))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=cli.env,
        cwd=cli.tmp_path,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "[]"
