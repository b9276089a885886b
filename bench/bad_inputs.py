"""The bad-input catalogue: every case run through the CLI and through the SDK, printing
its exit code (or exception) and message, and checking that no table changed.

    python bench/bad_inputs.py                  # scratch database on the local server
    python bench/bad_inputs.py --dsn URI        # a scratch database on that server

A scratch database ``absurd_bad_inputs`` is created and dropped afterwards. Prints a
table; exits 1 if any case was accepted, changed a table or did not exit 2. Not part of
the test suite (tests/cli and tests/sdk assert the same cases one by one).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from absurd_tui.db import schema  # noqa: E402
from absurd_tui.sdk import Absurd, TaskRegistry  # noqa: E402

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
SCRATCH = "absurd_bad_inputs"


def fingerprint(conn: psycopg.Connection) -> dict[str, str]:
    names = [
        r[0]
        for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'absurd' ORDER BY 1"
        )
    ]
    return {
        name: conn.execute(
            sql.SQL(
                "SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, ',' ORDER BY t::text)), '')"
                " FROM absurd.{} t"
            ).format(sql.Identifier(name))
        ).fetchone()[0]
        for name in names
    }


def cli_cases(big_file: Path, failed_task: str) -> list[tuple[str, list[str]]]:
    return [
        ("NUL in params", ["spawn", "t", "--params", '{"note": "boom\\u0000"}']),
        ("NUL in -P value", ["spawn", "t", "-P", 'note:="a\\u0000b"']),
        ("NUL in payload", ["emit", "ev", "--payload", '{"note": "\\u0000"}']),
        ("lone surrogate in payload", ["emit", "ev", "--payload", '"\\ud800"']),
        ("invalid UTF-8 in a task name", ["spawn", os.fsdecode(b"t\xff")]),
        ("max-attempts 2^31", ["spawn", "t", "--max-attempts", "2147483648"]),
        ("max-attempts 0", ["spawn", "t", "--max-attempts", "0"]),
        ("retry kind bogus", ["spawn", "t", "--retry-strategy", '{"kind": "bogus"}']),
        (
            "retry base_seconds abc",
            ["spawn", "t", "--retry-strategy", '{"kind": "fixed", "base_seconds": "abc"}'],
        ),
        (
            "retry base_seconds -5",
            ["spawn", "t", "--retry-strategy", '{"kind": "fixed", "base_seconds": -5}'],
        ),
        (
            "retry max_seconds 1e9",
            ["spawn", "t", "--retry-strategy", '{"kind": "exponential", "max_seconds": 1e9}'],
        ),
        (
            "retry factor NaN-ish",
            ["spawn", "t", "--retry-strategy", '{"kind": "exponential", "factor": -1}'],
        ),
        ("retry unknown key", ["spawn", "t", "--retry-strategy", '{"kind": "fixed", "bse": 5}']),
        ("cancellation max_delay -1", ["spawn", "t", "--cancellation", '{"max_delay": -1}']),
        ("cancellation 1.5 s", ["spawn", "t", "--cancellation", '{"max_duration": 1.5}']),
        ("params a list", ["spawn", "t", "--params", "[1, 2]"]),
        ("headers a list", ["spawn", "t", "--headers", "[1]"]),
        ("params 3 MiB", ["spawn", "t", "--params", f"@{big_file}"]),
        ("payload 3 MiB", ["emit", "ev", "--payload", f"@{big_file}"]),
        (
            "retry --max-attempts 2^31",
            ["retry", failed_task, "--max-attempts", "2147483648"],
        ),
        ("DSN bad percent-escape", ["--dsn", "postgresql://u:s3cret%pw@host/db", "tasks"]),
        ("DSN unclosed IPv6 bracket", ["--dsn", "postgresql://u:s3cret@[::1/db", "tasks"]),
    ]


def sdk_cases() -> list[tuple[str, Callable[[Absurd], Any]]]:
    big = {"blob": "x" * (3 * 1024 * 1024)}
    return [
        ("NUL in params", lambda c: c.spawn("t", {"note": "boom\x00"}, queue="default")),
        ("NUL in payload", lambda c: c.emit_event("ev", {"note": "\x00"})),
        ("lone surrogate in payload", lambda c: c.emit_event("ev", "\ud800")),
        ("lone surrogate in task name", lambda c: c.spawn("t\udcff", {}, queue="default")),
        ("max_attempts 2^31", lambda c: c.spawn("t", {}, queue="default", max_attempts=2**31)),
        (
            "retry kind bogus",
            lambda c: c.spawn("t", {}, queue="default", retry_strategy={"kind": "bogus"}),
        ),
        (
            "retry base_seconds abc",
            lambda c: c.spawn(
                "t", {}, queue="default", retry_strategy={"kind": "fixed", "base_seconds": "abc"}
            ),
        ),
        (
            "retry unknown key",
            lambda c: c.spawn("t", {}, queue="default", retry_strategy={"kind": "none", "x": 1}),
        ),
        (
            "cancellation max_delay -1",
            lambda c: c.spawn("t", {}, queue="default", cancellation={"max_delay": -1}),
        ),
        ("headers a list", lambda c: c.spawn("t", {}, queue="default", headers=[1])),
        ("params 3 MiB", lambda c: c.spawn("t", big, queue="default")),
        ("payload 3 MiB", lambda c: c.emit_event("ev", big)),
        ("DSN bad percent-escape", lambda c: Absurd("postgresql://u:s3cret%pw@host/db")),
    ]


def run_cli(dsn: str, args: list[str]) -> tuple[int, str]:
    full = args if args[0] == "--dsn" else ["--dsn", dsn, *args]
    proc = subprocess.run(
        [sys.executable, "-m", "absurd_tui", *full],
        capture_output=True,
        text=True,
        errors="backslashreplace",
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        cwd=ROOT,
        timeout=120,
    )
    return proc.returncode, (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1:][0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    args = parser.parse_args()
    params = conninfo_to_dict(args.dsn)
    params["dbname"] = SCRATCH
    scratch = make_conninfo(**params)
    with psycopg.connect(args.dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(SCRATCH)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(SCRATCH)))
    bad = 0
    try:
        with psycopg.connect(scratch, autocommit=True) as conn:
            schema.install(conn)
            client = Absurd(conn, registry=TaskRegistry())
            client.create_queue()
            with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as big:
                json.dump({"blob": "x" * (3 * 1024 * 1024)}, big)
            print(f"{'CLI case':32} {'rc':>3}  unchanged  message")
            failed = conn.execute(
                "SELECT task_id FROM absurd.spawn_task('default', 't', '{}', '{\"max_attempts\": 1}')"
            ).fetchone()[0]
            (run_id,) = conn.execute(
                "SELECT run_id FROM absurd.claim_task('default', 'bench', 30, 1)"
            ).fetchone()
            conn.execute("SELECT absurd.fail_run('default', %s, '{\"message\": \"x\"}')", (run_id,))
            for name, cli_args in cli_cases(Path(big.name), str(failed)):
                before = fingerprint(conn)
                code, message = run_cli(scratch, cli_args)
                same = fingerprint(conn) == before
                bad += code != 2 or not same or "s3cret" in message
                print(f"{name:32} {code:>3}  {'yes' if same else 'NO':9}  {message}")
            os.unlink(big.name)
            print(f"\n{'SDK case':32} {'exception':18} unchanged  message")
            for name, call in sdk_cases():
                before = fingerprint(conn)
                try:
                    call(client)
                except ValueError as exc:
                    kind, message = type(exc).__name__, str(exc)
                else:
                    kind, message = "accepted", ""
                    bad += 1
                same = fingerprint(conn) == before
                bad += not same or "s3cret" in message
                print(f"{name:32} {kind:18} {'yes' if same else 'NO':9}  {message[:160]}")
    finally:
        with psycopg.connect(args.dsn, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(SCRATCH))
            )
    print(f"\n{bad} case(s) not refused cleanly")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
