"""The CLI says what the operations core says: outcomes, the one unknown-queue message,
and errors reported by their kind (a timeout is not an unreachable database)."""

from __future__ import annotations

import json
import uuid

import pytest

from absurd_tui import ops
from absurd_tui.ops.queues import unknown_queue

from .helpers import assert_clean_error


def spawn(conn, name: str = "job", queue: str = "default") -> str:
    row = conn.execute(
        "SELECT task_id FROM absurd.spawn_task(%s, %s, '{}', '{\"max_attempts\": 1}')",
        (queue, name),
    ).fetchone()
    return str(row[0])


def complete(conn, task_id: str, queue: str = "default") -> None:
    """Claim the task's run as a worker would and complete it."""
    run_id = conn.execute(
        "SELECT run_id FROM absurd.claim_task(%s, 'test-worker', 30, 1)", (queue,)
    ).fetchone()[0]
    conn.execute("SELECT absurd.complete_run(%s, %s, %s)", (queue, run_id, json.dumps("done")))


def test_a_repeated_emit_reports_the_ops_outcome_already_emitted(cli, conn, default_queue):
    first = cli("emit", "order-paid", "--payload", '{"amount": 5}')
    assert first.code == 0, first
    emitted_at = conn.execute(
        "SELECT emitted_at FROM absurd.e_default WHERE event_name = 'order-paid'"
    ).fetchone()[0]
    assert (
        first.out
        == ops.Emitted("default", "order-paid", ops.EmitStatus.EMITTED, None).message + "\n"
    )

    again = cli("emit", "order-paid", "--payload", '{"amount": 7}')
    assert again.code == 0, again
    expected = ops.Emitted("default", "order-paid", ops.EmitStatus.ALREADY_EMITTED, emitted_at)
    assert again.out == expected.message + "\n"
    assert "already emitted" in again.out and "nothing changed" in again.out


@pytest.mark.parametrize("finish", ["completed", "cancelled"])
def test_cancel_of_a_finished_task_reports_already_finished(cli, conn, default_queue, finish):
    task_id = spawn(conn, "nightly")
    if finish == "completed":
        complete(conn, task_id)
    else:
        conn.execute("SELECT absurd.cancel_task('default', %s)", (uuid.UUID(task_id),))
    ref = ops.task_ref(conn, "default", task_id)
    assert ref.state == finish
    result = cli("cancel", task_id)
    expected = ops.Cancelled(ref, ops.CancelStatus.ALREADY_FINISHED, finish).message
    assert_clean_error(result, 1, expected)
    assert result.err == f"absurd-tui: {expected}\n"
    assert f"already {finish}" in result.err


def test_retry_of_a_task_that_is_not_failed_reports_the_ops_outcome(cli, conn, default_queue):
    task_id = spawn(conn)
    ref = ops.task_ref(conn, "default", task_id)
    result = cli("retry", task_id)
    expected = ops.Retried(ref, ops.RetryStatus.NOT_FAILED, "pending").message
    assert_clean_error(result, 1)
    assert result.err == f"absurd-tui: {expected}\n"


UNKNOWN_QUEUE_COMMANDS = [
    ("spawn", "greet", "--queue", "nope"),
    ("emit", "paid", "--queue", "nope"),
    ("tasks", "--queue", "nope"),
    ("events", "--queue", "nope"),
    ("queue", "drop", "nope", "--yes"),
    ("retry", "{task}", "--queue", "nope"),
    ("cancel", "{task}", "--queue", "nope"),
    ("show", "{task}", "--queue", "nope"),
    ("worker", "--queue", "nope"),
    ("agent", "Hi", "--queue", "nope"),
]


@pytest.mark.parametrize(
    "args",
    UNKNOWN_QUEUE_COMMANDS,
    ids=lambda args: "-".join(args[:2] if args[0] == "queue" else args[:1]),
)
def test_every_command_refuses_an_unknown_queue_with_the_one_message(
    cli, conn, default_queue, args
):
    task_id = spawn(conn)
    result = cli(*(arg.format(task=task_id) for arg in args))
    expected = str(unknown_queue("nope", ["default"]))
    assert_clean_error(result, 2)
    assert result.err == f"absurd-tui: {expected}\n"
    assert 'Unknown queue "nope"' in expected and "queue create nope" in expected
    assert conn.execute("SELECT count(*) FROM absurd.t_default").fetchone()[0] == 1
    assert conn.execute("SELECT count(*) FROM absurd.e_default").fetchone()[0] == 0
    assert [r[0] for r in conn.execute("SELECT queue_name FROM absurd.queues")] == ["default"]


def test_a_lock_timeout_is_reported_as_a_timeout_not_an_unreachable_database(
    cli, connect, default_queue
):
    holder = connect(autocommit=False)
    holder.execute("LOCK TABLE absurd.t_default, absurd.r_default IN ACCESS EXCLUSIVE MODE")
    try:
        result = cli("tasks", "--queue", "default", env={"PGOPTIONS": "-c lock_timeout=200"})
    finally:
        holder.rollback()
    assert_clean_error(result, 1, "took too long")
    assert "Cannot connect" not in result.err and "Lost the connection" not in result.err
    assert len(result.err.strip().splitlines()) == 1, result
