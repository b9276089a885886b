"""Scale-out through the command line: two ``absurd-tui worker`` processes, 500 tasks
spawned with ``absurd-tui spawn``, and a SIGTERM to one worker in the middle."""

from __future__ import annotations

import json
import re
import signal
import threading

import pytest
from support import wait_until

from .cli_tasks import CREATE_TABLE
from .helpers import TASK_MODULE

SINGLE = 5
BATCHES = 5
PER_BATCH = 99
TOTAL = SINGLE + BATCHES * PER_BATCH
TASK_SECONDS = 0.1


def busy_moment(conn, pid: int) -> bool:
    """Well into the run, with a backlog, and the worker ``pid`` holding tasks."""
    executions = conn.execute("SELECT count(*) FROM cli_test_executions").fetchone()[0]
    backlog = conn.execute(
        "SELECT count(*) FROM absurd.r_scale WHERE state = 'pending'"
    ).fetchone()[0]
    held = conn.execute(
        "SELECT count(*) FROM absurd.r_scale WHERE state = 'running' AND claimed_by LIKE %s",
        (f"%:{pid}:%",),
    ).fetchone()[0]
    return executions >= 150 and backlog >= 20 and held >= 2


def counts(conn) -> tuple[int, int]:
    executions = conn.execute("SELECT count(*) FROM cli_test_executions").fetchone()[0]
    completed = conn.execute(
        "SELECT count(*) FROM absurd.t_scale WHERE state = 'completed'"
    ).fetchone()[0]
    return executions, completed


@pytest.mark.slow
def test_two_workers_complete_500_cli_spawned_tasks_exactly_once_through_a_sigterm(cli, conn):
    assert TOTAL == 500
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
        "4",
        "--claim-timeout",
        "5",
        "--grace",
        "30",
    )
    stopped, survivor = cli.start(*common, env=env), cli.start(*common, env=env)

    spawns = []

    def spawn_everything() -> None:
        # A few one-task invocations, then the bulk as --batch invocations: every task
        # goes through `absurd-tui spawn`, in one process at a time (processes, as this
        # thread runs beside the test's own).
        for n in range(SINGLE):
            spawns.append(
                cli.process(
                    "spawn",
                    "record",
                    "-q",
                    "scale",
                    "-P",
                    f"n:={n}",
                    "-P",
                    f"sleep:={TASK_SECONDS}",
                )
            )
        for batch in range(BATCHES):
            lines = "\n".join(
                json.dumps({"n": SINGLE + batch * PER_BATCH + i, "sleep": TASK_SECONDS})
                for i in range(PER_BATCH)
            )
            spawns.append(
                cli.process("spawn", "record", "-q", "scale", "--batch", "-", input=lines)
            )

    spawner = threading.Thread(target=spawn_everything)
    spawner.start()
    try:
        # Stop one worker while both are busy and more work keeps arriving.
        wait_until(lambda: busy_moment(conn, stopped.pid), timeout=120, what="a busy moment")
        stopped.signal(signal.SIGTERM)
        assert stopped.wait(timeout=60) == 0, stopped.log()
        spawner.join(timeout=120)
        assert not spawner.is_alive()
        wait_until(lambda: counts(conn)[1] == TOTAL, timeout=120, what="every task to complete")
    finally:
        spawner.join(timeout=120)
        stopped.stop()
        assert survivor.stop() == 0, survivor.log()

    for result in spawns:
        assert result.code == 0, result
    spawned_ids = [line for result in spawns for line in result.out.split()]
    assert len(spawned_ids) == len(set(spawned_ids)) == TOTAL

    # Every task ran its recording step exactly once and completed on its first
    # attempt: the stopped worker finished what it had before leaving.
    rows = conn.execute(
        "SELECT task_id::text, count(*) FROM cli_test_executions GROUP BY 1"
    ).fetchall()
    assert {task_id for task_id, _ in rows} == set(spawned_ids)
    assert all(n == 1 for _, n in rows)
    tasks = conn.execute(
        "SELECT state, attempts, count(*) FROM absurd.t_scale GROUP BY 1, 2"
    ).fetchall()
    assert tasks == [("completed", 1, TOTAL)]
    params = conn.execute("SELECT params->>'n' FROM absurd.t_scale").fetchall()
    assert sorted(int(n) for (n,) in params) == list(range(TOTAL))

    # Both workers did real work, and the stopped one was busy when the signal came.
    by_pid = dict(
        conn.execute("SELECT pid, count(*) FROM cli_test_executions GROUP BY pid").fetchall()
    )
    assert set(by_pid) == {stopped.pid, survivor.pid}
    log = stopped.log()
    busy = re.search(r"giving (\d+) running task\(s\)", log)
    assert busy and int(busy.group(1)) >= 1, log
    assert "Stopped cleanly" in log
    assert "Traceback" not in log + survivor.log()
