"""How long the console takes to open a task with huge params, and what it costs in memory.

    python bench/console_open_task.py [--dsn DSN] [--mb 100]

Creates a database ``absurd_bench_open`` (dropped and re-created) with two tasks: one
with small params and one with about --mb MB of params. Each is opened in a fresh
process running the real console headless (Textual's run_test) on that database: the
time is from the open to the moment its params section shows (the outline of a large
value), and the memory is the process's peak RSS after opening minus its RSS before.
Goal: under 1 s, and no more memory than the small task.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DBNAME = "absurd_bench_open"


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def prepare(admin_dsn: str, mb: int) -> tuple[str, str, str]:
    from absurd_tui.db import schema

    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DBNAME))
        )
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DBNAME)))
    dsn = make_conninfo(**{**conninfo_to_dict(admin_dsn), "dbname": DBNAME})
    with psycopg.connect(dsn, autocommit=True) as conn:
        schema.install(conn)
        conn.execute("SELECT absurd.create_queue('bench')")
        small = conn.execute(
            "SELECT task_id FROM absurd.spawn_task('bench', 'small', '{\"to\": \"ada\"}')"
        ).fetchone()[0]
        # Rows of distinct text, built by the server: about 1 KB each.
        big = conn.execute(
            "SELECT task_id FROM absurd.spawn_task('bench', 'big', jsonb_build_object('rows', "
            "(SELECT jsonb_agg(repeat(md5(g::text), 31) || g) "
            "FROM generate_series(1, %s) AS g)))",
            (mb * 1024,),
        ).fetchone()[0]
    return dsn, str(small), str(big)


async def open_once(dsn: str, task_id: str) -> tuple[float, float, str]:
    from textual.widgets import Static

    from absurd_tui.ui.app import AbsurdApp
    from absurd_tui.ui.screens.main import MainScreen
    from absurd_tui.ui.screens.task_detail import TaskDetailScreen
    from absurd_tui.ui.source import LiveSource

    source = LiveSource(dsn, "bench")
    app = AbsurdApp(source, listen=False, refresh=3600)
    async with app.run_test(size=(120, 40)) as pilot:
        while not isinstance(app.screen, MainScreen) or not app.screen.tasks_view.loaded:
            await pilot.pause(0.01)
        before = rss_mb()
        start = time.perf_counter()
        app.open_task("bench", uuid.UUID(task_id))
        while True:
            screen = app.screen
            if isinstance(screen, TaskDetailScreen) and screen.is_mounted:
                text = str(screen.query_one("#params", Static).render())
                if text.strip():
                    break
            await pilot.pause(0.01)
        elapsed = time.perf_counter() - start
        await pilot.pause(0.5)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    source.close()
    return elapsed, peak - before, text.splitlines()[0][:100]


def child(dsn: str, task_id: str) -> int:
    elapsed, grew, first = asyncio.run(open_once(dsn, task_id))
    print(json.dumps({"seconds": elapsed, "grew_mb": grew, "first_line": first}))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--mb", type=int, default=100)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(*args.child)
    dsn, small, big = prepare(args.dsn, args.mb)
    try:
        print(f"{'task':<22}{'open s':>8}{'RSS growth MB':>15}  params section")
        for label, task_id in (("small params", small), (f"{args.mb} MB params", big)):
            out = subprocess.run(
                [sys.executable, __file__, "--dsn", args.dsn, "--child", dsn, task_id],
                capture_output=True,
                text=True,
                check=True,
            )
            result = json.loads(out.stdout.strip().splitlines()[-1])
            print(
                f"{label:<22}{result['seconds']:>8.2f}{result['grew_mb']:>15.1f}  "
                f"{result['first_line']}"
            )
    finally:
        with psycopg.connect(args.dsn, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DBNAME))
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
