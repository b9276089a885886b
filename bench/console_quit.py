"""How long the console takes to exit after q while a task runs, and what becomes of the task.

    python bench/console_quit.py [--dsn DSN]

Starts ``absurd-tui --tasks <a module with one slow task>`` in a detached tmux session
on a fresh database ``absurd_bench_quit``, spawns the slow task (one 0.2 s step after
another, max_attempts 1), waits until it has run a few steps, then presses q (and, in
the second round, q twice) and measures the time until the console's process is gone.
It then reports the task's state and attempt: handed back, it is pending on attempt 1.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DBNAME = "absurd_bench_quit"
SESSION = "absurd-bench-quit"
TASKS = """
import time
from absurd_tui import register_task

@register_task("bench-slow", queue="default", default_max_attempts=1)
def slow(params, ctx):
    for n in range(params.get("steps", 1000)):
        ctx.step("tick", lambda n=n: time.sleep(0.2) or n)
    return "done"
"""


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], check=True, capture_output=True, text=True).stdout


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def one_round(dsn: str, module: Path, presses: int) -> tuple[float, str, int, int]:
    from absurd_tui.db import schema

    with psycopg.connect(dsn, autocommit=True) as conn:
        schema.install(conn)
        conn.execute("SELECT absurd.create_queue('default')")
    command = [sys.executable, "-m", "absurd_tui", "--dsn", dsn, "--workers", "1"]
    command += ["--tasks", str(module)]
    subprocess.run(["tmux", "kill-session", "-t", SESSION], capture_output=True)
    tmux("new-session", "-d", "-s", SESSION, "-x", "120", "-y", "40", "exec " + shlex.join(command))
    pid = int(tmux("list-panes", "-t", SESSION, "-F", "#{pane_pid}").strip())
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            task_id = conn.execute(
                "SELECT task_id FROM absurd.spawn_task('default', 'bench-slow', '{}', "
                "'{\"max_attempts\": 1}')"
            ).fetchone()[0]
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                done = conn.execute(
                    "SELECT count(*) FROM absurd.c_default WHERE task_id = %s", (task_id,)
                ).fetchone()[0]
                if done >= 3:
                    break
                time.sleep(0.1)
            else:
                raise SystemExit("the slow task did not start")
            start = time.monotonic()
            for _ in range(presses):
                tmux("send-keys", "-t", SESSION, "q")
                time.sleep(0.3)
            while alive(pid) and time.monotonic() - start < 60:
                time.sleep(0.02)
            took = time.monotonic() - start
            state, attempts = conn.execute(
                "SELECT state, attempts FROM absurd.t_default WHERE task_id = %s", (task_id,)
            ).fetchone()
            steps = conn.execute(
                "SELECT count(*) FROM absurd.c_default WHERE task_id = %s", (task_id,)
            ).fetchone()[0]
        return took, state, attempts, steps
    finally:
        subprocess.run(["tmux", "kill-session", "-t", SESSION], capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    module = Path(tempfile.mkdtemp(prefix="absurd-bench-quit-")) / "bench_slow_tasks.py"
    module.write_text(TASKS)
    dsn = make_conninfo(**{**conninfo_to_dict(args.dsn), "dbname": DBNAME})
    print(f"{'keys':<8}{'q to exit s':>12}  task afterwards")
    try:
        for presses in (1, 2):
            with psycopg.connect(args.dsn, autocommit=True) as admin:
                admin.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(DBNAME)
                    )
                )
                admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DBNAME)))
            took, state, attempts, steps = one_round(dsn, module, presses)
            keys = " ".join(["q"] * presses)
            print(f"{keys:<8}{took:>12.2f}  {state}, attempt {attempts}, {steps} steps kept")
    finally:
        with psycopg.connect(args.dsn, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DBNAME))
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
