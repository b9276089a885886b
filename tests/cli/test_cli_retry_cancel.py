"""absurd-tui retry and cancel, and how task ids given on the command line resolve."""

from __future__ import annotations

import json
import uuid

from .helpers import assert_clean_error


def spawn(conn, name: str = "job", queue: str = "default", max_attempts: int = 1) -> str:
    row = conn.execute(
        "SELECT task_id FROM absurd.spawn_task(%s, %s, %s, %s)",
        (queue, name, "{}", json.dumps({"max_attempts": max_attempts})),
    ).fetchone()
    return str(row[0])


def fail(conn, task_id: str, queue: str = "default") -> None:
    """Claim the task's run as some worker would and fail it for good."""
    run_id = conn.execute(
        "SELECT run_id FROM absurd.claim_task(%s, 'test-worker', 30, 1)", (queue,)
    ).fetchone()[0]
    reason = {
        "name": "ValueError",
        "message": "boom",
        "traceback": "Traceback (most recent call last):\n  ...",
    }
    conn.execute("SELECT absurd.fail_run(%s, %s, %s, NULL)", (queue, run_id, json.dumps(reason)))
    assert state(conn, task_id, queue) == "failed"


def state(conn, task_id: str, queue: str = "default") -> str:
    return conn.execute(
        f'SELECT state FROM absurd."t_{queue}" WHERE task_id = %s', (uuid.UUID(task_id),)
    ).fetchone()[0]


def test_retry_in_place_by_short_id(cli, conn, default_queue):
    task_id = spawn(conn)
    fail(conn, task_id)
    result = cli("retry", task_id[-12:])
    assert result.code == 0, result
    assert "attempt 2" in result.out
    assert state(conn, task_id) == "pending"
    attempts = conn.execute(
        "SELECT attempts FROM absurd.t_default WHERE task_id = %s", (uuid.UUID(task_id),)
    ).fetchone()[0]
    assert attempts == 2


def test_retry_as_a_new_task(cli, conn, default_queue):
    task_id = spawn(conn, "export")
    fail(conn, task_id)
    result = cli("retry", task_id[:13], "--spawn-new", "--json")
    assert result.code == 0, result
    new = result.json()
    assert new["task_id"] != task_id and new["created"] is True
    assert state(conn, new["task_id"]) == "pending"
    assert state(conn, task_id) == "failed"


def test_retry_of_a_task_that_is_not_failed_fails(cli, conn, default_queue):
    task_id = spawn(conn)
    result = cli("retry", task_id)
    assert_clean_error(result, 1, "pending, not failed")
    assert state(conn, task_id) == "pending"


def test_engine_refusal_is_exit_1_with_the_engine_message(cli, conn, default_queue):
    task_id = spawn(conn)
    fail(conn, task_id)
    result = cli.process("retry", task_id, "--max-attempts", "1")
    assert_clean_error(result, 1, "must be greater than current attempts")
    assert len(result.err.strip().splitlines()) == 1
    assert state(conn, task_id) == "failed"


def test_cancel_and_cancel_again(cli, conn, default_queue):
    task_id = spawn(conn, "nightly")
    result = cli("cancel", task_id)
    assert result.code == 0, result
    assert "cancelled" in result.out
    assert state(conn, task_id) == "cancelled"
    again = cli("cancel", task_id)
    assert_clean_error(again, 1, "already cancelled")


def test_unknown_task_id(cli, conn, default_queue):
    spawn(conn)
    for command in ("retry", "cancel", "show"):
        result = cli(command, "ffffffff")
        assert_clean_error(result, 2, "No task", "ffffffff")


def test_ambiguous_prefix_lists_the_candidates_and_changes_nothing(cli, conn, default_queue):
    first, second = spawn(conn), spawn(conn)
    prefix = shared_prefix(first, second)
    assert len(prefix) >= 4, (first, second)  # UUIDv7 ids spawned together share a time prefix
    result = cli("cancel", prefix)
    assert_clean_error(result, 2, first, second)
    assert state(conn, first) == state(conn, second) == "pending"


def test_not_a_task_id(cli, default_queue):
    assert_clean_error(cli("cancel", "not-an-id"), 2, "not a task id")


def test_task_id_in_an_unknown_queue(cli, conn, default_queue):
    task_id = spawn(conn)
    assert_clean_error(cli("cancel", task_id, "--queue", "nope"), 2, 'Unknown queue "nope"')
    assert state(conn, task_id) == "pending"


def test_task_id_resolves_across_queues(cli, conn, default_queue):
    conn.execute("SELECT absurd.create_queue('other')")
    task_id = spawn(conn, queue="other")
    result = cli("cancel", task_id[: 8 + 1 + 4])
    assert result.code == 0, result
    assert state(conn, task_id, "other") == "cancelled"


def shared_prefix(a: str, b: str) -> str:
    """The characters two ids share at the start (os.path.commonpath compares path
    components, so for two ids it is '')."""
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]
