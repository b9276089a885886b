"""absurd-tui worker: runs tasks, logs what happens, stops gracefully on signals."""

from __future__ import annotations

import signal
import uuid

import pytest
from support import wait_until

from .cli_tasks import CREATE_TABLE
from .helpers import TASK_MODULE, assert_clean_error


def task_state(conn, task_id: str, queue: str = "default") -> str:
    return conn.execute(
        f'SELECT state FROM absurd."t_{queue}" WHERE task_id = %s', (uuid.UUID(task_id),)
    ).fetchone()[0]


def log_lines(log: str, task_id: str) -> list[str]:
    return [line for line in log.splitlines() if task_id in line]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_worker_logs_each_start_step_end_and_failure(cli, conn, default_queue, signum):
    worker = cli.start(
        "worker", "--queue", "default", "--tasks", str(TASK_MODULE), "--concurrency", "2"
    )
    try:
        ok = cli("spawn", "steps").out.strip()
        bad = cli("spawn", "steps", "-P", "fail:=true", "--max-attempts", "1").out.strip()
        wait_until(
            lambda: task_state(conn, ok) == "completed" and task_state(conn, bad) == "failed",
            timeout=30,
            what="both tasks to finish",
        )
        # The pool logs the outcome after recording it; wait for the line, not a time.
        wait_until(
            lambda: any("failed" in line for line in log_lines(worker.log(), bad)),
            timeout=30,
            what="failure line",
        )
        worker.signal(signum)
        assert worker.wait(timeout=30) == 0, worker.log()
    finally:
        worker.stop()
    log = worker.log()
    assert "ready" in log and "Stopped cleanly" in log, log
    assert "Traceback" not in log
    ok_lines = log_lines(log, ok)
    assert len(ok_lines) == 4, ok_lines
    assert "started" in ok_lines[0]
    assert "'fetch'" in ok_lines[1] and "'store'" in ok_lines[2]
    assert "completed" in ok_lines[3]
    bad_lines = log_lines(log, bad)
    assert (
        "failed" in bad_lines[-1]
        and "asked to fail" in bad_lines[-1]
        and "RuntimeError" in bad_lines[-1]
    )


def test_worker_bad_input(cli, conn, default_queue):
    assert_clean_error(cli("worker", "--tasks", "no_such_module_xyz"), 2, "no_such_module_xyz")
    assert_clean_error(
        cli("worker", "--tasks", "/nonexistent/tasks.py"), 2, "/nonexistent/tasks.py"
    )
    assert_clean_error(cli("worker", "--queue", "nope"), 2, 'Unknown queue "nope"')
    assert_clean_error(cli("worker", "--concurrency", "0"), 2, "--concurrency")


def test_a_task_still_running_after_the_grace_period_is_reclaimed_by_another_worker(cli, conn):
    """The first worker leaves when its grace ends; the second takes the task over
    once the lease lapses, and it completes once."""
    conn.execute(CREATE_TABLE)
    assert cli("queue", "create", "scale").code == 0
    env = {"CLI_TEST_RECORD_DSN": cli.dsn}
    common = (
        "worker",
        "--queue",
        "scale",
        "--tasks",
        str(TASK_MODULE),
        "--concurrency",
        "1",
        "--claim-timeout",
        "2",
    )
    first = cli.start(*common, "--grace", "0.5", env=env)
    second = None
    try:
        spawned = cli("spawn", "hold", "--queue", "scale", "-P", "seconds:=3")
        assert spawned.code == 0, spawned
        task_id = spawned.out.strip()
        wait_until(
            lambda: conn.execute("SELECT count(*) FROM cli_test_executions").fetchone()[0] == 1,
            timeout=30,
            what="the first worker to start the task",
        )
        first.signal(signal.SIGTERM)
        assert first.wait(timeout=30) == 0, first.log()
        assert "1 task(s) unfinished" in first.log()
        second = cli.start(*common, "--grace", "30", env=env)
        wait_until(
            lambda: task_state(conn, task_id, "scale") == "completed", timeout=60, what="completion"
        )
    finally:
        first.stop()
        if second is not None:
            assert second.stop() == 0, second.log()
    starts = conn.execute(
        "SELECT attempt, pid FROM cli_test_executions WHERE task_id = %s ORDER BY id",
        (uuid.UUID(task_id),),
    ).fetchall()
    assert starts == [(1, first.pid), (2, second.pid)]
    runs = conn.execute(
        "SELECT attempt, state, failure_reason->>'name' FROM absurd.r_scale WHERE task_id = %s ORDER BY attempt",
        (uuid.UUID(task_id),),
    ).fetchall()
    assert runs == [(1, "failed", "$ClaimTimeout"), (2, "completed", None)]
    result = conn.execute(
        "SELECT completed_payload FROM absurd.t_scale WHERE task_id = %s", (uuid.UUID(task_id),)
    ).fetchone()[0]
    assert result == {"pid": second.pid}


def test_without_queues_a_worker_serves_and_creates_those_of_its_tasks(cli, conn):
    worker = cli.start("worker", "--tasks", str(TASK_MODULE), "--concurrency", "1")
    try:

        def names():
            return [r[0] for r in conn.execute("SELECT queue_name FROM absurd.queues ORDER BY 1")]

        # 'default' and 'scale' from the test module, 'agents' for the built-in agent.
        wait_until(
            lambda: names() == ["agents", "default", "scale"],
            timeout=30,
            what="the worker's queues",
        )
        spawned = cli("spawn", "steps")
        assert spawned.code == 0, spawned
        wait_until(
            lambda: task_state(conn, spawned.out.strip()) == "completed",
            timeout=30,
            what="the task to run",
        )
    finally:
        assert worker.stop() == 0, worker.log()
    assert "queue(s) default, agents, scale" in worker.log()
