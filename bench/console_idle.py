"""What the console costs while nobody touches it: CPU and RSS, sampled under a real terminal.

    python bench/console_idle.py [--dsn DSN] [--scenarios empty,3k,1m,large] [--seconds 60]

For each scenario it prepares a database (dropped and re-created), starts
``absurd-tui --dsn ...`` inside a detached tmux session of a fixed size, waits until the
console shows it is connected, lets it settle, then samples the console process's CPU
time and resident memory from /proc once a second for --seconds. It also reports the CPU
of the PostgreSQL backends serving the console's connections (their application_name
starts with ``absurd-tui``), so work moved to the server does not hide. Scenarios:

* ``empty``: no tasks (the console creates its workers' queues).
* ``3k``: 3,000 pending tasks on a queue no embedded worker serves.
* ``1m``: 1,000,000 tasks in realistic proportions (the seed of bench/tui_queries.py).
* ``large``: one task with 3 MB params, opened in the detail screen before sampling.

Goals: at most 2 % CPU idle with 0 tasks, 3 % with 3,000 pending, 5 % with 1,000,000
tasks, RSS under 150 MB at 1,000,000. Without --dsn it uses a throwaway embedded server.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
import psycopg.types.json
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from absurd_tui.db import schema  # noqa: E402

DBNAME = "absurd_bench_idle"
SESSION = "absurd-bench-idle"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
GOALS = {"empty": 2.0, "3k": 3.0, "1m": 5.0, "large": 5.0}
RSS_GOAL_MB = 150.0


@dataclass
class Sample:
    cpu_percent: float
    server_cpu_percent: float
    rss_mb_max: float
    rss_mb_end: float


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of stat; fields[0] here is field 3.
    return int(fields[11]) + int(fields[12])


def rss_mb(pid: int) -> float:
    pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return pages * PAGE / 1e6


def backend_pids(dsn: str) -> list[int]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return [
            row[0]
            for row in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name LIKE 'absurd-tui%%'"
            )
        ]


def backend_ticks(pids: list[int]) -> dict[int, int]:
    ticks = {}
    for pid in pids:
        try:
            ticks[pid] = cpu_ticks(pid)
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return ticks


def ticks_used(before: dict[int, int], after: dict[int, int]) -> int:
    # A backend that went away (a connection closed) is left out of both ends.
    return sum(after[pid] - before[pid] for pid in before.keys() & after.keys())


def prepare(admin_dsn: str, scenario: str, total: int) -> str:
    server = conninfo_to_dict(admin_dsn)
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DBNAME))
        )
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DBNAME)))
    dsn = make_conninfo(**{**server, "dbname": DBNAME})
    with psycopg.connect(dsn, autocommit=True) as conn:
        schema.install(conn)
        if scenario == "3k":
            conn.execute("SELECT absurd.create_queue('bench')")
            conn.execute(
                "SELECT absurd.spawn_task('bench', 'send-email', jsonb_build_object('n', g))"
                " FROM generate_series(1, 3000) AS g"
            )
            conn.execute("VACUUM ANALYZE")
        elif scenario == "1m":
            import tui_queries

            tui_queries.seed(conn, total)
        elif scenario == "large":
            conn.execute("SELECT absurd.create_queue('bench')")
            blob = "x" * 1000
            conn.execute(
                "SELECT absurd.spawn_task('bench', 'big-params', %s::jsonb)",
                (psycopg.types.json.Jsonb({"rows": [blob] * 3000}),),
            )
    return dsn


def tmux(*args: str) -> str:
    return subprocess.run(
        ["tmux", *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def screen_text() -> str:
    return tmux("capture-pane", "-p", "-t", SESSION)


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise SystemExit(f"timed out waiting for {what}; the screen shows:\n{screen_text()}")


def measure(dsn: str, scenario: str, seconds: float, size: str, settle: float, extra: list[str]):
    width, height = size.split("x")
    command = [sys.executable, "-m", "absurd_tui", "--dsn", dsn, *extra]
    subprocess.run(["tmux", "kill-session", "-t", SESSION], capture_output=True)
    tmux(
        "new-session",
        "-d",
        "-s",
        SESSION,
        "-x",
        width,
        "-y",
        height,
        "exec " + shlex.join(command),
    )
    try:
        pid = int(tmux("list-panes", "-t", SESSION, "-F", "#{pane_pid}"))
        wait_for(lambda: "connected" in screen_text(), 60, "the console to connect")
        if scenario == "large":
            wait_for(lambda: "big-params" in screen_text(), 30, "the task to be listed")
            tmux("send-keys", "-t", SESSION, "Enter")
            wait_for(lambda: "Params" in screen_text(), 120, "the task detail to open")
        time.sleep(settle)
        pids = backend_pids(dsn)
        start_cpu, start_server = cpu_ticks(pid), backend_ticks(pids)
        start = time.monotonic()
        rss = []
        deadline = start + seconds
        while time.monotonic() < deadline:
            time.sleep(1.0)
            rss.append(rss_mb(pid))
        elapsed = time.monotonic() - start
        used = (cpu_ticks(pid) - start_cpu) / CLK_TCK
        server = ticks_used(start_server, backend_ticks(pids)) / CLK_TCK
        return Sample(100 * used / elapsed, 100 * server / elapsed, max(rss), rss[-1])
    finally:
        subprocess.run(["tmux", "kill-session", "-t", SESSION], capture_output=True)


def run(admin_dsn: str, args: argparse.Namespace) -> int:
    results = []
    try:
        for scenario in args.scenarios.split(","):
            print(f"preparing {scenario} ...", flush=True)
            dsn = prepare(admin_dsn, scenario, args.tasks)
            extra = ["--no-workers"] if args.no_workers else []
            sample = measure(dsn, scenario, args.seconds, args.size, args.settle, extra)
            results.append((scenario, sample))
            print(
                f"  {scenario}: console {sample.cpu_percent:.2f} % CPU, "
                f"server backends {sample.server_cpu_percent:.2f} % CPU, "
                f"RSS max {sample.rss_mb_max:.0f} MB",
                flush=True,
            )
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DBNAME))
            )
    mode = "no workers" if args.no_workers else "2 embedded workers"
    print(f"\nconsole idle for {args.seconds:g} s at {args.size}, {mode}")
    print(
        f"{'scenario':<10}{'CPU %':>8}{'goal':>7}{'server %':>10}{'RSS max MB':>12}{'RSS end':>9}"
    )
    for scenario, s in results:
        goal = GOALS.get(scenario)
        print(
            f"{scenario:<10}{s.cpu_percent:>8.2f}{goal:>7.1f}{s.server_cpu_percent:>10.2f}"
            f"{s.rss_mb_max:>12.0f}{s.rss_mb_end:>9.0f}"
            + ("" if s.cpu_percent <= goal else "  over goal")
            + ("  RSS over goal" if scenario == "1m" and s.rss_mb_max > RSS_GOAL_MB else "")
        )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", help="a server's maintenance DSN (default: embedded server)")
    parser.add_argument("--scenarios", default="empty,3k,1m")
    parser.add_argument("--tasks", type=int, default=1_000_000, help="tasks of the 1m scenario")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--settle", type=float, default=5.0, help="seconds before sampling")
    parser.add_argument("--size", default="120x40", help="terminal size, WIDTHxHEIGHT")
    parser.add_argument("--no-workers", action="store_true", help="start with --no-workers")
    args = parser.parse_args()
    if shutil.which("tmux") is None:
        raise SystemExit("this bench needs tmux (the console must run under a real terminal)")
    if args.dsn:
        return run(args.dsn, args)
    from absurd_tui.db.embedded import import_pgserver

    pgserver = import_pgserver()
    tmp = Path(tempfile.mkdtemp(prefix="absurd-tui-bench-"))
    server = pgserver.get_server(tmp / "pgdata", cleanup_mode="delete")
    try:
        return run(server.get_uri("postgres"), args)
    finally:
        server.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
