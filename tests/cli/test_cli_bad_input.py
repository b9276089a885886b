"""Every bad input is refused at the door: exit 2, a message naming the field, no raw
PostgreSQL text, no "unexpected error", and no table changed."""

from __future__ import annotations

import json
import os
import signal

import pytest
from support import Proxy, free_port, table_contents, via_port, wait_until

from .helpers import assert_clean_error

CASES = [
    (("spawn", "t", "--params", '{"note": "boom\\u0000"}'), 'params["note"] contains a NUL'),
    (("spawn", "t", "-P", 'note:="a\\u0000b"'), 'params["note"] contains a NUL'),
    (("emit", "ev", "--payload", '{"note": "\\u0000"}'), 'payload["note"] contains a NUL'),
    (("emit", "ev", "--payload", '"\\ud800"'), "payload contains a lone surrogate (\\ud800)"),
    (("spawn", os.fsdecode(b"t\xff")), "task_name contains a lone surrogate (\\udcff)"),
    (("spawn", "t", "--max-attempts", "2147483648"), "max_attempts must be a whole number"),
    (("spawn", "t", "--retry-strategy", '{"kind": "bogus"}'), "retry_strategy.kind must be"),
    (
        ("spawn", "t", "--retry-strategy", '{"kind": "fixed", "base_seconds": "abc"}'),
        "retry_strategy.base_seconds must be a number from 0 to 86,400, not 'abc'",
    ),
    (
        ("spawn", "t", "--retry-strategy", '{"kind": "fixed", "base_seconds": -1}'),
        "retry_strategy.base_seconds must be a number from 0 to 86,400, not -1",
    ),
    (
        ("spawn", "t", "--retry-strategy", '{"kind": "exponential", "max_seconds": 1e9}'),
        "retry_strategy.max_seconds must be",
    ),
    (
        ("spawn", "t", "--retry-strategy", '{"kind": "fixed", "bse": 5}'),
        "retry_strategy has unknown key(s) 'bse'",
    ),
    (
        ("spawn", "t", "--cancellation", '{"max_delay": -1}'),
        "cancellation.max_delay must be a whole number of seconds >= 0",
    ),
    (("spawn", "t", "--params", "[1, 2]"), "params must be a JSON object"),
    (("spawn", "t", "--headers", "[1]"), "--headers must be a JSON object"),
]


@pytest.mark.parametrize(("args", "message"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_input_exits_2_naming_the_field_and_changes_nothing(
    cli, conn, default_queue, args, message
):
    before = table_contents(conn)
    result = cli(*args)
    assert_clean_error(result, 2, message)
    assert "unexpected error" not in result.err
    assert table_contents(conn) == before


def test_batch_lines_must_be_objects_and_nothing_is_spawned(cli, conn, default_queue):
    before = table_contents(conn)
    result = cli("spawn", "t", "--batch", "-", input='{"n": 1}\n[2]\n')
    assert_clean_error(result, 2, "params must be a JSON object")
    assert table_contents(conn) == before


def test_oversized_params_and_payloads_exit_2(cli, conn, default_queue, tmp_path):
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"blob": "x" * 3000}))
    before = table_contents(conn)
    env = {"ABSURD_MAX_PAYLOAD_BYTES": "2000"}
    result = cli("spawn", "t", "--params", f"@{big}", env=env)
    assert_clean_error(
        result, 2, "params is 2.9 KiB (3,012 bytes), over the limit of 2.0 KiB (2,000 bytes)"
    )
    result = cli("emit", "ev", "--payload", f"@{big}", env=env)
    assert_clean_error(result, 2, "payload is 2.9 KiB")
    assert table_contents(conn) == before


def test_max_attempts_of_a_retry_is_checked(cli, conn, default_queue):
    task_id = conn.execute(
        "SELECT task_id FROM absurd.spawn_task('default', 't', '{}', '{\"max_attempts\": 1}')"
    ).fetchone()[0]
    (run_id,) = conn.execute(
        "SELECT run_id FROM absurd.claim_task('default', 'w', 30, 1)"
    ).fetchone()
    conn.execute("SELECT absurd.fail_run('default', %s, '{\"message\": \"x\"}')", (run_id,))
    before = table_contents(conn)
    result = cli("retry", str(task_id), "--max-attempts", "2147483648")
    assert_clean_error(result, 2, "max_attempts must be a whole number from 1 to 2,147,483,647")
    assert table_contents(conn) == before


def test_the_default_retry_strategy_is_exponential_and_documented(cli, conn, default_queue):
    task_id = cli("spawn", "t").out.strip()
    strategy = conn.execute(
        "SELECT retry_strategy FROM absurd.t_default WHERE task_id = %s", (task_id,)
    ).fetchone()[0]
    assert strategy == {"kind": "exponential", "base_seconds": 2, "factor": 2, "max_seconds": 600}
    assert "default: exponential backoff" in " ".join(cli("spawn", "--help").out.split())


@pytest.mark.parametrize(
    ("dsn", "what"),
    [
        ("postgresql://u:s3cret%pw@host/db", 'invalid percent-encoded token: "****"'),
        ("postgresql://u:s3cret@[::1/db", "postgresql://u:****@[::1/db"),
        ("host=db password='s3cret", "unterminated quoted string"),
    ],
)
def test_an_unparsable_dsn_exits_2_without_its_password(bare_cli, dsn, what):
    result = bare_cli.process("tasks", dsn=dsn)
    assert_clean_error(result, 2, "The connection string cannot be parsed:", what)
    assert "s3cret" not in result.err + result.out


def test_a_password_on_the_command_line_is_warned_about_once(bare_cli):
    result = bare_cli.process("tasks", dsn="postgresql://u:s3cret@127.0.0.1:1/db")
    assert result.err.count("visible to every user of this machine") == 1
    assert "PGPASSWORD" in result.err and "s3cret" not in result.err
    quiet = bare_cli.process("tasks", dsn="postgresql://u@127.0.0.1:1/db")
    assert "visible to every user" not in quiet.err


def test_dsn_help_documents_the_password_less_form(bare_cli):
    help_text = " ".join(bare_cli("--help", dsn=False).out.split())
    assert "PGPASSWORD or ~/.pgpass" in help_text


def test_a_worker_started_before_its_database_waits_then_works(cli, conn, default_queue):
    port = free_port()
    proxy = Proxy(cli.dsn, port)
    waiting = _start_worker(cli, via_port(cli.dsn, port))
    try:
        wait_until(lambda: "cannot be reached yet" in waiting.log(), what="the waiting message")
        assert waiting.proc.poll() is None, waiting.log()
        proxy.start()
        task_id = conn.execute(
            "SELECT task_id FROM absurd.spawn_task('default', 'nobody-knows', '{}', '{}')"
        ).fetchone()[0]
        # An unknown task name is deferred by a working worker: proof it claims.
        wait_until(
            lambda: (
                conn.execute(
                    "SELECT state FROM absurd.t_default WHERE task_id = %s", (task_id,)
                ).fetchone()[0]
                == "sleeping"
            ),
            what="the worker to claim",
        )
        assert waiting.log().count("cannot be reached yet") == 1
    finally:
        waiting.signal(signal.SIGTERM)
        waiting.wait(30)
        proxy.close()


def _start_worker(cli, dsn: str, *extra: str):
    from .helpers import Background

    return Background(
        [*cli.command(("worker", "-q", "default", "-c", "1", *extra), False), "--dsn", dsn],
        cli.env,
        cli.tmp_path,
    )


def test_connect_timeout_bounds_the_wait(cli):
    dsn = via_port(cli.dsn, free_port())
    result = cli.process("worker", "--connect-timeout", "1", dsn=dsn, timeout=60)
    assert_clean_error(result, 2, "Cannot connect to PostgreSQL")
    assert "Gave up waiting for the database" in result.err
