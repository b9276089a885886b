"""Workers survive lost connections, a database restart and a killed process."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path

import psycopg
import pytest
from support import wait_until

from absurd_tui.db import schema
from absurd_tui.runtime import WorkerStatus
from absurd_tui.sdk import Absurd, TaskRegistry

from .crash_tasks import SETUP_SQL, make_registry
from .helpers import checkpoints, count_effects, run_rows

REPO = Path(__file__).resolve().parents[2]


def stepwise(
    registry,
    ran: Counter,
    between: threading.Event,
    release: threading.Event,
    name: str = "stepwise",
):
    @registry.register_task(name)
    def task(params, ctx):
        ctx.step("one", lambda: ran.update(["one"]) or 1)
        if not release.is_set():
            between.set()
            release.wait(30)
        ctx.step("two", lambda: ran.update(["two"]) or 2)
        ctx.step("three", lambda: ran.update(["three"]) or 3)
        return {"attempt": ctx.attempt}

    return task


def completed(client, task_id):
    def check():
        snapshot = client.fetch_task_result(task_id)
        return snapshot if snapshot is not None and snapshot.state == "completed" else None

    return check


def test_terminated_connections_reconnect_and_resume_the_same_run(
    client, registry, make_pool, connect
):
    ran = Counter()
    between, release = threading.Event(), threading.Event()
    stepwise(registry, ran, between, release)
    reports: list[WorkerStatus] = []
    pool = make_pool(registry, concurrency=2, claim_timeout=30, on_status=reports.append).start()
    wait_until(lambda: pool.listener_connected, what="the listener")
    spawned = client.spawn("stepwise", {})
    assert between.wait(10)
    admin = connect()
    # Network loss as the server sees it: every backend of the pool is cut off.
    killed = admin.execute(
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE datname = current_database() AND application_name LIKE 'absurd-tui%%' "
        "AND application_name <> 'absurd-tui client'"
    ).fetchone()[0]
    assert killed >= 3  # two workers, the listener (and the lease keeper once it ran)
    release.set()
    assert wait_until(completed(client, spawned.task_id), timeout=20).result == {"attempt": 1}
    runs = run_rows(admin, "default", spawned.task_id)
    # The same run went on after reconnecting: no lease expiry, no second attempt.
    assert [(r["attempt"], r["state"]) for r in runs] == [(1, "completed")]
    assert ran == {"one": 1, "two": 1, "three": 1}
    assert checkpoints(admin, "default", spawned.task_id) == {"one": 1, "two": 2, "three": 3}
    assert any(r.state == "disconnected" for r in reports)
    wait_until(lambda: pool.listener_connected, what="the listener to reconnect")
    # And the pool still picks up new work at once.
    again = client.spawn("stepwise", {})
    assert wait_until(completed(client, again.task_id), timeout=10)


@pytest.fixture
def own_server():
    """A private embedded PostgreSQL this test may restart.

    Not under pytest's tmp_path: as root, pgserver runs the server as another user and
    opens up the directory's parents, which pytest (here or in a concurrent run) closes
    again to 0700.
    """
    from absurd_tui.db import embedded

    base = Path(tempfile.mkdtemp(prefix="absurd-tui-restart-"))
    server = embedded.get_server(base / "pgdata", cleanup_mode="delete")
    try:
        yield server
    finally:
        server.cleanup()
        shutil.rmtree(base, ignore_errors=True)


def test_a_database_restart_is_survived_without_losing_or_repeating_steps(own_server, make_pool):
    from absurd_tui.db.embedded import import_pgserver

    pgserver = import_pgserver()
    dsn = own_server.get_uri("postgres")
    with psycopg.connect(dsn, autocommit=True) as conn:
        schema.install(conn)
    registry = TaskRegistry()
    # A DSN client: its pool replaces the connections the restart breaks.
    client = Absurd(dsn, registry=registry)
    client.create_queue()
    ran = Counter()
    between, release = threading.Event(), threading.Event()
    stepwise(registry, ran, between, release)
    reports: list[WorkerStatus] = []
    pool = make_pool(
        registry,
        dsn=dsn,
        concurrency=2,
        claim_timeout=30,
        on_status=reports.append,
        reconnect_max_delay=0.5,
    ).start()
    try:
        spawned = client.spawn("stepwise", {})
        assert between.wait(10)
        pgserver.pg_ctl(
            ["-w", "-m", "fast", "restart"],
            pgdata=own_server.pgdata,
            user=own_server.system_user,
            timeout=60,
        )
        release.set()
        assert wait_until(completed(client, spawned.task_id), timeout=30).result == {"attempt": 1}
        assert ran == {"one": 1, "two": 1, "three": 1}
        assert any(r.state == "disconnected" for r in reports)
        wait_until(lambda: all(s.state == "idle" for s in pool.statuses()), what="idle workers")
        again = client.spawn("stepwise", {})
        wait_until(completed(client, again.task_id), timeout=10)
    finally:
        pool.stop()
        client.close()


def test_a_killed_worker_process_is_finished_by_another_without_repeating_steps(
    db_dsn, conn, make_pool
):
    conn.execute(SETUP_SQL)
    client = Absurd(conn, registry=make_registry(db_dsn, hang_in_step_three=False))
    client.create_queue()
    spawned = client.spawn("crashy", {})
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    )
    doomed = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("crash_worker.py")), db_dsn],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until(
            lambda: count_effects(conn).get("three") == 1, timeout=30, what="step three to start"
        )
        assert set(checkpoints(conn, "default", spawned.task_id)) == {"one", "two"}
    finally:
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(10)
    assert run_rows(conn, "default", spawned.task_id)[0]["claimed_by"] == "doomed:0"
    make_pool(make_registry(db_dsn, hang_in_step_three=False), claim_timeout=1).start()
    assert wait_until(completed(client, spawned.task_id), timeout=30).result == {"attempt": 2}
    runs = run_rows(conn, "default", spawned.task_id)
    assert [(r["attempt"], r["state"]) for r in runs] == [(1, "failed"), (2, "completed")]
    assert runs[0]["failure_reason"]["name"] == "$ClaimTimeout"
    # Steps committed before the kill ran exactly once; the step cut short ran again.
    assert count_effects(conn) == {"one": 1, "two": 1, "three": 2, "four": 1}


def test_no_textual_in_the_sdk_or_runtime():
    code = (
        "import sys, absurd_tui, absurd_tui.sdk, absurd_tui.runtime; "
        "assert not [m for m in sys.modules if m == 'textual' or m.startswith('textual.')], 'textual imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
