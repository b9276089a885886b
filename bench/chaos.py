"""Chaos figures: what an unlucky operator does to a running system, and what it costs.

Starts a private PostgreSQL from pgserver's binaries (its own data directory, its own
pg_ctl), two ``absurd-tui worker`` processes (4 threads each, the default 30 s lease,
the default retry strategy), and measures:

* restart under load: 500 tasks x 5 steps, two ``pg_ctl restart -m fast`` while they
  run: tasks lost, committed steps re-run, time for work to resume;
* an outage longer than the lease: the server stopped for 40 s while tasks run;
* five SIGKILLs of a worker process (each replaced at once): the time from the kill to
  each orphaned task running again, split into lease expiry and waiting to be claimed.

Every step records an effect noting whether its checkpoint was already committed (see
bench/chaos_tasks.py), so a committed step that runs again is counted, not guessed.

    python bench/chaos.py                      # everything (about 4 minutes)
    python bench/chaos.py --only restart,kills

Prints figures; not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from absurd_tui.db import schema  # noqa: E402
from absurd_tui.db.embedded import import_pgserver  # noqa: E402
from absurd_tui.sdk import Absurd, TaskRegistry  # noqa: E402

TASKS = ROOT / "bench" / "chaos_tasks.py"
sys.path.insert(0, str(TASKS.parent))
from chaos_tasks import SETUP_SQL  # noqa: E402

THREADS = 4
LEASE = 30


class Server:
    """A private PostgreSQL this script may restart, stop and start."""

    def __init__(self) -> None:
        self.pgserver = import_pgserver()
        self.base = Path(tempfile.mkdtemp(prefix="absurd-chaos-"))
        self.server = self.pgserver.get_server(self.base / "pgdata", cleanup_mode="stop")
        self.dsn = self.server.get_uri("postgres")
        self.socket_dir = parse_qs(urlsplit(self.dsn).query)["host"][0]
        self.log = self.base / "pgdata" / "log"

    def _pg_ctl(self, args: list[str]) -> None:
        self.pgserver.pg_ctl(
            args, pgdata=self.server.pgdata, user=self.server.system_user, timeout=120
        )

    def restart(self) -> None:
        self._pg_ctl(["-w", "-m", "fast", "restart"])

    def stop(self) -> None:
        self._pg_ctl(["-w", "-m", "fast", "stop"])

    def start(self) -> None:
        self._pg_ctl(
            ["-w", "-o", '-h ""', "-o", f"-k {self.socket_dir}", "-l", str(self.log), "start"]
        )

    def close(self) -> None:
        try:
            self.server.cleanup()
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


class Observer:
    """The bench's own connection, reconnecting through restarts."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.conn: psycopg.Connection | None = None

    def query(self, query: Any, params: tuple = ()) -> list[tuple]:
        while True:
            try:
                if self.conn is None or self.conn.closed or self.conn.broken:
                    self.conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=2)
                return self.conn.execute(query, params).fetchall()
            except psycopg.OperationalError:
                self.conn = None
                time.sleep(0.05)

    def one(self, query: Any, params: tuple = ()) -> Any:
        return self.query(query, params)[0][0]


def table(prefix: str, queue: str) -> sql.Identifier:
    return sql.Identifier(f"{prefix}_{queue}")


def completed(obs: Observer, queue: str) -> int:
    return obs.one(
        sql.SQL("SELECT count(*) FROM absurd.{} WHERE state = 'completed'").format(
            table("t", queue)
        )
    )


def committed_steps(obs: Observer, queue: str) -> int:
    return obs.one(
        sql.SQL("SELECT count(*) FROM absurd.{} WHERE status = 'committed'").format(
            table("c", queue)
        )
    )


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> float:
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)
    return time.monotonic() - started


class Workers:
    """``absurd-tui worker`` processes on one queue, logging to files."""

    def __init__(self, dsn: str, queue: str, logs: Path) -> None:
        self.dsn, self.queue, self.logs = dsn, queue, logs
        self.procs: list[subprocess.Popen] = []
        self.count = 0

    def start(self) -> subprocess.Popen:
        self.count += 1
        env = dict(os.environ, ABSURD_DATABASE_URL=self.dsn, PYTHONPATH=str(ROOT))
        log = open(self.logs / f"{self.queue}-worker-{self.count}.log", "w")  # noqa: SIM115
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "absurd_tui",
                "worker",
                "-q",
                self.queue,
                "-t",
                str(TASKS),
                "-c",
                str(THREADS),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.procs.append(proc)
        return proc

    def prefix(self, proc: subprocess.Popen) -> str:
        return f"{socket.gethostname()}:{proc.pid}"

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(40)
            except subprocess.TimeoutExpired:
                proc.kill()


def spawn(dsn: str, queue: str, count: int, steps: int, step_ms: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        client = Absurd(conn, queue_name=queue, registry=TaskRegistry())
        client.create_queue(queue)
        with conn.transaction():
            for index in range(count):
                client.spawn(
                    f"steps-{queue}", {"n": index, "steps": steps, "step_ms": step_ms}, queue=queue
                )


def integrity(obs: Observer, queue: str, tasks: int, steps: int) -> dict[str, Any]:
    done = completed(obs, queue)
    reruns = obs.one(
        sql.SQL(
            "SELECT count(*) FROM chaos_effects e JOIN absurd.{} t USING (task_id) "
            "WHERE e.committed_before"
        ).format(table("t", queue))
    )
    executions = obs.one(
        sql.SQL("SELECT count(*) FROM chaos_effects e JOIN absurd.{} t USING (task_id)").format(
            table("t", queue)
        )
    )
    timeouts = obs.one(
        sql.SQL(
            "SELECT count(*) FROM absurd.{} WHERE failure_reason ->> 'name' = '$ClaimTimeout'"
        ).format(table("r", queue))
    )
    other_failures = obs.one(
        sql.SQL(
            "SELECT count(*) FROM absurd.{} WHERE state = 'failed' "
            "AND failure_reason ->> 'name' <> '$ClaimTimeout'"
        ).format(table("r", queue))
    )
    retried = obs.one(
        sql.SQL("SELECT count(*) FROM absurd.{} WHERE attempts > 1").format(table("t", queue))
    )
    return {
        "tasks lost": tasks - done,
        "committed steps re-run": reruns,
        "step executions": f"{executions} for {tasks * steps} steps "
        f"({executions - tasks * steps} uncommitted steps repeated)",
        "runs failed by lease expiry": timeouts,
        "runs failed otherwise": other_failures,
        "tasks that needed a second attempt": retried,
    }


def report(title: str, figures: dict[str, Any]) -> None:
    print(f"\n== {title}")
    for key, value in figures.items():
        print(f"  {key:38} {value}")
    sys.stdout.flush()


def restart_under_load(server: Server, obs: Observer, logs: Path) -> None:
    queue, tasks, steps = "chaos", 500, 5
    spawn(server.dsn, queue, tasks, steps, step_ms=50)
    workers = Workers(server.dsn, queue, logs)
    started = time.monotonic()
    workers.start()
    workers.start()
    figures: dict[str, Any] = {}
    try:
        for number, at in enumerate((100, 300), start=1):
            wait_for(lambda at=at: completed(obs, queue) >= at, 300, f"{at} tasks done")
            before = time.monotonic()
            server.restart()
            up = time.monotonic()
            base = committed_steps(obs, queue)
            resumed = wait_for(lambda base=base: committed_steps(obs, queue) > base, 120, "work")
            figures[f"restart {number} (at {at} done)"] = (
                f"pg_ctl restart took {up - before:.1f} s; steps resumed {resumed:.2f} s after "
                "the server was back"
            )
        wait_for(lambda: completed(obs, queue) == tasks, 600, "every task")
        figures["wall time for all tasks"] = f"{time.monotonic() - started:.1f} s"
    finally:
        workers.stop()
    figures.update(integrity(obs, queue, tasks, steps))
    report(f"Restart under load: {tasks} tasks x {steps} steps, 2 workers x {THREADS}", figures)


def outage_longer_than_lease(server: Server, obs: Observer, logs: Path, seconds: float) -> None:
    queue, tasks, steps = "outage", 100, 5
    spawn(server.dsn, queue, tasks, steps, step_ms=200)
    workers = Workers(server.dsn, queue, logs)
    workers.start()
    workers.start()
    figures: dict[str, Any] = {}
    try:
        wait_for(lambda: completed(obs, queue) >= 20, 300, "20 tasks done")
        running = obs.one(
            sql.SQL("SELECT count(*) FROM absurd.{} WHERE state = 'running'").format(
                table("r", queue)
            )
        )
        obs.conn = None
        server.stop()
        time.sleep(seconds)
        server.start()
        back = time.monotonic()
        base = committed_steps(obs, queue)
        resumed = wait_for(lambda: committed_steps(obs, queue) > base, 120, "work")
        wait_for(lambda: completed(obs, queue) == tasks, 600, "every task")
        figures["outage"] = f"{seconds:.0f} s (lease {LEASE} s), {running} runs in flight"
        figures["steps resumed after restart"] = f"{resumed:.2f} s"
        figures["all tasks done after restart"] = f"{time.monotonic() - back:.1f} s"
    finally:
        workers.stop()
    figures.update(integrity(obs, queue, tasks, steps))
    report(f"Outage longer than the lease: {tasks} tasks x {steps} steps of 200 ms", figures)


def kills(server: Server, obs: Observer, logs: Path, count: int = 5) -> None:
    queue, tasks, steps = "kills", 500, 5
    spawn(server.dsn, queue, tasks, steps, step_ms=250)
    workers = Workers(server.dsn, queue, logs)
    live = [workers.start(), workers.start()]
    orphans: list[tuple[int, str, int, Any]] = []  # (kill, task_id, attempt, killed_at)
    figures: dict[str, Any] = {}
    try:
        wait_for(lambda: completed(obs, queue) >= 20, 300, "work to start")
        for number in range(count):
            victim = live.pop(0)
            held = obs.query(
                sql.SQL(
                    "SELECT task_id, attempt FROM absurd.{} WHERE state = 'running' "
                    "AND claimed_by LIKE %s"
                ).format(table("r", queue)),
                (workers.prefix(victim) + ":%",),
            )
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            killed_at = obs.one("SELECT clock_timestamp()")
            orphans += [(number, str(t), a, killed_at) for t, a in held]
            live.append(workers.start())
            time.sleep(4)
        delays, lease_parts, claim_parts = [], [], []
        for _, task_id, attempt, killed_at in orphans:

            def next_started(task_id: str = task_id, attempt: int = attempt) -> Any:
                rows = obs.query(
                    sql.SQL(
                        "SELECT started_at FROM absurd.{} WHERE task_id = %s AND attempt = %s"
                    ).format(table("r", queue)),
                    (task_id, attempt + 1),
                )
                return rows[0][0] if rows else None

            wait_for(lambda next_started=next_started: next_started() is not None, 300, "retry")
            expired, failed = obs.query(
                sql.SQL(
                    "SELECT claim_expires_at, failed_at FROM absurd.{} "
                    "WHERE task_id = %s AND attempt = %s"
                ).format(table("r", queue)),
                (task_id, attempt),
            )[0]
            started = next_started()
            delays.append((started - killed_at).total_seconds())
            lease_parts.append(max(0.0, (expired - killed_at).total_seconds()))
            claim_parts.append((started - failed).total_seconds())
        wait_for(lambda: completed(obs, queue) == tasks, 600, "every task")
        figures["kills"] = f"{count}, orphaning {len(orphans)} runs"
        figures["kill -> running again (s)"] = _spread(delays)
        figures["  of which lease left (s)"] = _spread(lease_parts)
        figures["  of which expiry -> claimed (s)"] = _spread(claim_parts)
    finally:
        workers.stop()
    figures.update(integrity(obs, queue, tasks, steps))
    report(
        f"{count} SIGKILLs of a worker process: {tasks} tasks x {steps} steps of 250 ms", figures
    )


def _spread(values: list[float]) -> str:
    if not values:
        return "-"
    return f"min {min(values):.1f}, median {statistics.median(values):.1f}, max {max(values):.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="restart,outage,kills")
    parser.add_argument("--outage", type=float, default=40.0, help="seconds (default 40)")
    args = parser.parse_args()
    wanted = set(args.only.split(","))
    server = Server()
    logs = Path(tempfile.mkdtemp(prefix="absurd-chaos-logs-"))
    print(f"private server {server.dsn}; worker logs in {logs}")
    try:
        with psycopg.connect(server.dsn, autocommit=True) as conn:
            schema.install(conn)
            conn.execute(SETUP_SQL)
        obs = Observer(server.dsn)
        if "restart" in wanted:
            restart_under_load(server, obs, logs)
        if "outage" in wanted:
            outage_longer_than_lease(server, obs, logs, args.outage)
        if "kills" in wanted:
            kills(server, obs, logs)
    finally:
        server.close()


if __name__ == "__main__":
    main()
