"""Worker throughput and pickup latency, ours against the official absurd-sdk worker.

In one run, on one server (a private embedded pgserver by default, ``--dsn`` for another):

* pgbench's single-row INSERT commit rate with 16 clients: the ceiling, turned into
  tasks/s by dividing by the commits a 3-step task needs (claim, 3 checkpoints, complete);
* drains of the same workload (``noop3``: three checkpointed no-op steps), alternating
  our ``absurd-tui worker`` and the official absurd-sdk 0.5.1 worker, at concurrency 1, 4
  and 16 per process with 1 and 2 processes;
* the console's embedded workers (``absurd-tui`` itself on Textual's headless driver: its
  WorkerPool with 2 threads and default settings) against a headless worker with 2 threads;
* spawn-to-start and emit-to-resume latency from idle, p50 and p95, for both workers.

A drain's rate is tasks / (last completion - first start), from the runs table, so
process start-up is not counted. ``synchronous_commit`` stays on throughout.

    python bench/throughput.py                    # everything, embedded server
    python bench/throughput.py --tasks 500 --only ours,official --concurrency 16

Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[1]
TASKS_MODULE = Path(__file__).resolve().parent / "throughput_tasks.py"
QUEUE = "tp"
COMMITS_PER_TASK = 5  # claim, three checkpoints, complete
DB_NAME = "absurd_throughput"


# -- the worker processes (this file re-run with --role) ------------------------------


def role_official(dsn: str, concurrency: int) -> None:
    from absurd_sdk import Absurd

    app = Absurd(dsn, queue_name=QUEUE)

    @app.register_task("noop3")
    def noop3(params: Any, ctx: Any) -> int:
        a = ctx.step("one", lambda: 1)
        b = ctx.step("two", lambda: 2)
        c = ctx.step("three", lambda: 3)
        return a + b + c

    @app.register_task("wait1")
    def wait1(params: Any, ctx: Any) -> Any:
        payload = ctx.await_event(params["event"])
        return ctx.step("after", lambda: payload)

    signal.signal(signal.SIGTERM, lambda *_: app.stop_worker())
    print("ready", flush=True)
    app.start_worker(concurrency=concurrency)


# -- helpers ---------------------------------------------------------------------------


def connect(dsn: str) -> psycopg.Connection:
    return psycopg.connect(dsn, autocommit=True)


def reset_queue(dsn: str) -> None:
    with connect(dsn) as conn:
        conn.execute("SELECT absurd.drop_queue(%s)", (QUEUE,))
        conn.execute("SELECT absurd.create_queue(%s)", (QUEUE,))


def spawn_many(dsn: str, n: int) -> None:
    with connect(dsn) as conn:
        conn.execute(
            "SELECT count(*) FROM generate_series(1, %s) i,"
            " LATERAL absurd.spawn_task(%s, 'noop3', jsonb_build_object('i', i),"
            " '{\"max_attempts\": 3}'::jsonb)",
            (n, QUEUE),
        )


def start_workers(kind: str, dsn: str, concurrency: int, processes: int) -> list[subprocess.Popen]:
    procs = []
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    for _ in range(processes):
        if kind == "ours":
            cmd = [
                sys.executable,
                "-m",
                "absurd_tui",
                "--dsn",
                dsn,
                "worker",
                "--queue",
                QUEUE,
                "--tasks",
                str(TASKS_MODULE),
                "--concurrency",
                str(concurrency),
            ]
        elif kind == "official":
            cmd = [
                sys.executable,
                __file__,
                "--role",
                "official",
                "--dsn",
                dsn,
                "-c",
                str(concurrency),
            ]
        else:
            # The console itself, as `absurd-tui` starts it (its embedded workers: 2
            # threads, default settings, every queue of the registered tasks), on
            # Textual's headless driver.
            env["TEXTUAL_DRIVER"] = "textual.drivers.headless_driver:HeadlessDriver"
            cmd = [sys.executable, "-m", "absurd_tui", "--dsn", dsn, "--tasks", str(TASKS_MODULE)]
        procs.append(
            subprocess.Popen(
                cmd,
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    for proc in procs:
        assert proc.stdout is not None
        if kind != "console":
            for line in proc.stdout:
                if "ready" in line:
                    break
            else:
                raise RuntimeError(f"{kind} worker exited before it was ready (rc {proc.wait()})")
        # Drain the rest in the background so a chatty log never blocks the worker.
        subprocess.Popen(["cat"], stdin=proc.stdout, stdout=subprocess.DEVNULL)
    if kind == "console":
        _wait_for_connections(dsn, "absurd-tui worker%", 2 * processes)
    return procs


def _wait_for_connections(dsn: str, application: str, count: int) -> None:
    deadline = time.monotonic() + 60
    with connect(dsn) as conn:
        while True:
            found = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE %s",
                (application,),
            ).fetchone()[0]
            if found >= count:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {found} of {count} {application} connections came up")
            time.sleep(0.05)


def stop_workers(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_idle_connected(dsn: str, procs: int, seconds: float = 1.0) -> None:
    """Give freshly started workers a moment to open their connections."""
    time.sleep(seconds)


def wait_done(dsn: str, n: int, timeout: float = 600.0) -> None:
    deadline = time.monotonic() + timeout
    with connect(dsn) as conn:
        while True:
            done = conn.execute(
                f"SELECT count(*) FROM absurd.t_{QUEUE} WHERE state = 'completed'"
            ).fetchone()[0]
            if done >= n:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {done} of {n} tasks completed in {timeout} s")
            time.sleep(0.05)


def drain_rate(dsn: str) -> float:
    with connect(dsn) as conn:
        n, seconds = conn.execute(
            f"SELECT count(*), extract(epoch FROM max(completed_at) - min(started_at))"
            f" FROM absurd.r_{QUEUE} WHERE state = 'completed'"
        ).fetchone()
    return n / float(seconds)


def drain(kind: str, dsn: str, n: int, concurrency: int, processes: int) -> float:
    reset_queue(dsn)
    procs = start_workers(kind, dsn, concurrency, processes)
    try:
        wait_idle_connected(dsn, processes)
        spawn_many(dsn, n)
        wait_done(dsn, n)
    finally:
        stop_workers(procs)
    return drain_rate(dsn)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def latencies(kind: str, dsn: str, samples: int) -> tuple[list[float], list[float]]:
    """Spawn-to-start and emit-to-resume from idle, in ms, from database timestamps."""
    reset_queue(dsn)
    procs = start_workers(kind, dsn, 1, 1)
    start_ms: list[float] = []
    resume_ms: list[float] = []
    try:
        wait_idle_connected(dsn, 1)
        with connect(dsn) as conn:
            for i in range(samples):
                event = f"go-{i}"
                task_id = conn.execute(
                    "SELECT task_id FROM absurd.spawn_task(%s, 'wait1', %s::jsonb)",
                    (QUEUE, json.dumps({"event": event})),
                ).fetchone()[0]
                state = _wait_task_state(conn, task_id, ("sleeping",))
                started = conn.execute(
                    f"SELECT extract(epoch FROM r.started_at - t.enqueue_at) * 1000"
                    f" FROM absurd.t_{QUEUE} t JOIN absurd.r_{QUEUE} r"
                    f" ON r.run_id = t.last_attempt_run WHERE t.task_id = %s",
                    (task_id,),
                ).fetchone()[0]
                start_ms.append(float(started))
                # Idle again: the worker is back in its wait before the event arrives.
                time.sleep(0.05)
                conn.execute("SELECT absurd.emit_event(%s, %s, 'null')", (QUEUE, event))
                state = _wait_task_state(conn, task_id, ("completed",))
                assert state == "completed"
                resumed = conn.execute(
                    f"SELECT extract(epoch FROM r.started_at - e.emitted_at) * 1000"
                    f" FROM absurd.t_{QUEUE} t JOIN absurd.r_{QUEUE} r"
                    f" ON r.run_id = t.last_attempt_run"
                    f" JOIN absurd.e_{QUEUE} e ON e.event_name = %s WHERE t.task_id = %s",
                    (event, task_id),
                ).fetchone()[0]
                resume_ms.append(float(resumed))
                time.sleep(0.05)
    finally:
        stop_workers(procs)
    return start_ms, resume_ms


def _wait_task_state(conn: psycopg.Connection, task_id: Any, states: tuple[str, ...]) -> str:
    deadline = time.monotonic() + 30
    while True:
        state = conn.execute(
            f"SELECT state FROM absurd.t_{QUEUE} WHERE task_id = %s", (task_id,)
        ).fetchone()[0]
        if state in states:
            return state
        if time.monotonic() > deadline:
            raise RuntimeError(f"task {task_id} stuck in {state}")
        time.sleep(0.002)


def pgbench_ceiling(dsn: str, clients: int = 16, seconds: int = 5) -> float:
    conninfo = psycopg.conninfo.conninfo_to_dict(dsn)
    binary = _pgbench_binary()
    with connect(dsn) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bench_pgbench (id bigserial PRIMARY KEY, v int)")
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as script:
        script.write("INSERT INTO bench_pgbench (v) VALUES (1);\n")
    env = dict(os.environ)
    args = [binary, "-n", "-f", script.name, "-c", str(clients), "-j", "2", "-T", str(seconds)]
    for key, flag in (("host", "-h"), ("port", "-p"), ("user", "-U")):
        if conninfo.get(key):
            args += [flag, str(conninfo[key])]
    if conninfo.get("password"):
        env["PGPASSWORD"] = str(conninfo["password"])
    args.append(str(conninfo.get("dbname", "postgres")))
    out = subprocess.run(args, capture_output=True, text=True, env=env, check=True).stdout
    os.unlink(script.name)
    with connect(dsn) as conn:
        conn.execute("DROP TABLE bench_pgbench")
    for line in out.splitlines():
        if line.startswith("tps ="):
            return float(line.split()[2])
    raise RuntimeError(f"no tps in pgbench output:\n{out}")


def _pgbench_binary() -> str:
    try:
        from absurd_tui.db.embedded import import_pgserver

        pgserver = import_pgserver()
        candidate = Path(pgserver.__file__).parent / "pginstall" / "bin" / "pgbench"
        if candidate.exists():
            return str(candidate)
    except ImportError:
        pass
    found = shutil.which("pgbench")
    if not found:
        raise RuntimeError("pgbench not found (the pgserver wheel or postgresql-client has it)")
    return found


def prepare_database(server_dsn: str) -> str:
    from psycopg import sql

    from absurd_tui.db import schema

    with connect(server_dsn) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DB_NAME))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DB_NAME)))
    dsn = psycopg.conninfo.make_conninfo(server_dsn, dbname=DB_NAME)
    with connect(dsn) as conn:
        schema.install(conn)
        sync = conn.execute("SHOW synchronous_commit").fetchone()[0]
    if sync != "on":
        raise RuntimeError(f"synchronous_commit is {sync}; this bench measures with it on")
    return dsn


# -- the run ----------------------------------------------------------------------------


def run(dsn: str, args: argparse.Namespace) -> None:
    only = set(args.only.split(",")) if args.only else None

    def wanted(part: str) -> bool:
        return only is None or part in only

    ceiling = single = None
    if wanted("pgbench"):
        ceiling = pgbench_ceiling(dsn)
        single = pgbench_ceiling(dsn, clients=1)
        print(f"pgbench single-insert, 16 clients: {ceiling:,.0f} commits/s", flush=True)
        print(
            f"pgbench single-insert, 1 client: {single:,.0f} commits/s"
            f" ({1000 / single:.2f} ms a commit; a {COMMITS_PER_TASK}-commit task at most"
            f" {single / COMMITS_PER_TASK:,.0f} tasks/s on one connection)",
            flush=True,
        )
        print(
            f"  ceiling for a {COMMITS_PER_TASK}-commit task: {ceiling / COMMITS_PER_TASK:,.0f}"
            f" tasks/s; 30% of it: {0.3 * ceiling / COMMITS_PER_TASK:,.0f} tasks/s",
            flush=True,
        )

    results: dict[tuple[str, int, int], float] = {}
    kinds = [k for k in ("ours", "official") if wanted(k)]
    for concurrency in args.concurrency:
        for processes in args.processes:
            for rnd in range(args.rounds):
                order = kinds if rnd % 2 == 0 else list(reversed(kinds))
                for kind in order:
                    rate = drain(kind, dsn, args.tasks, concurrency, processes)
                    key = (kind, concurrency, processes)
                    results[key] = max(results.get(key, 0.0), rate)
                    print(
                        f"drain {kind:8} c={concurrency:<2} processes={processes}"
                        f" round {rnd + 1}: {rate:7.1f} tasks/s",
                        flush=True,
                    )

    console = headless2 = None
    if wanted("console"):
        headless2 = drain("ours", dsn, args.console_tasks, 2, 1)
        console = drain("console", dsn, args.console_tasks, 2, 1)
        print(f"drain headless c=2: {headless2:7.1f} tasks/s", flush=True)
        print(f"drain console (2 embedded threads): {console:7.1f} tasks/s", flush=True)

    lat: dict[str, tuple[list[float], list[float]]] = {}
    if wanted("latency"):
        for kind in ("ours", "official"):
            lat[kind] = latencies(kind, dsn, args.samples)

    print("\n== summary ==")
    if ceiling is not None and single is not None:
        print(
            f"pgbench ceiling: {ceiling:,.0f} commits/s = {ceiling / COMMITS_PER_TASK:,.0f}"
            f" tasks/s (1 client: {single:,.0f} commits/s)"
        )
    for concurrency in args.concurrency:
        for processes in args.processes:
            ours = results.get(("ours", concurrency, processes))
            official = results.get(("official", concurrency, processes))
            parts = [f"c={concurrency:<2} x{processes}:"]
            if ours is not None:
                parts.append(f"ours {ours:7.1f}/s")
            if official is not None:
                parts.append(f"official {official:7.1f}/s")
            if ours and official:
                parts.append(f"ratio {ours / official:5.2f}x")
            if ours and ceiling:
                parts.append(f"{100 * ours / (ceiling / COMMITS_PER_TASK):5.1f}% of ceiling")
            print("  ".join(parts))
    if console is not None and headless2 is not None:
        print(
            f"console 2 threads {console:.1f}/s vs headless 2 threads {headless2:.1f}/s:"
            f" headless/console {headless2 / console:.2f}x"
        )
    for kind, (start_ms, resume_ms) in lat.items():
        print(
            f"latency {kind:8}: spawn-to-start p50 {statistics.median(start_ms):6.1f} ms"
            f" p95 {percentile(start_ms, 95):6.1f} ms; emit-to-resume p50"
            f" {statistics.median(resume_ms):6.1f} ms p95 {percentile(resume_ms, 95):6.1f} ms"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", help="a server to use (default: a private embedded pgserver)")
    parser.add_argument("--tasks", type=int, default=2000, help="tasks per drain")
    parser.add_argument("--console-tasks", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=1, help="alternated drains per setting")
    parser.add_argument("--samples", type=int, default=40, help="latency samples")
    parser.add_argument(
        "--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4, 16]
    )
    parser.add_argument(
        "--processes", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2]
    )
    parser.add_argument(
        "--only", help="comma-separated parts: pgbench, ours, official, console, latency"
    )
    parser.add_argument("--role", choices=["official"], help=argparse.SUPPRESS)
    parser.add_argument("-c", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "official":
        role_official(args.dsn, args.c)
        return 0
    if args.dsn:
        run(prepare_database(args.dsn), args)
        return 0
    from absurd_tui.db.embedded import import_pgserver

    pgserver = import_pgserver()
    tmp = Path(tempfile.mkdtemp(prefix="absurd-tui-throughput-"))
    server = pgserver.get_server(tmp / "pgdata", cleanup_mode="delete")
    try:
        run(prepare_database(server.get_uri("postgres")), args)
    finally:
        server.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
