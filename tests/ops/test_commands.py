"""Operations and their outcomes, against the real engine."""

from __future__ import annotations

import uuid

import pytest

from absurd_tui import ops
from absurd_tui.db.models import TaskFilter
from absurd_tui.ops import CancelStatus, EmitStatus, RetryStatus
from absurd_tui.sdk import Absurd


def _queue(conn, name: str = "default") -> str:
    conn.execute("SELECT absurd.create_queue(%s)", (name,))
    return name


def _claim(conn, queue: str = "default"):
    return conn.execute(
        "SELECT run_id, task_id FROM absurd.claim_task(%s, 'w', 60, 1)", (queue,)
    ).fetchone()


def _fail(conn, run_id, queue: str = "default") -> None:
    conn.execute(
        "SELECT absurd.fail_run(%s, %s, %s::jsonb, NULL)",
        (queue, run_id, '{"name": "Boom", "message": "boom", "retryable": false}'),
    )


def _complete(conn, run_id, queue: str = "default") -> None:
    conn.execute("SELECT absurd.complete_run(%s, %s, 'null'::jsonb)", (queue, run_id))


def test_resolve_queue_has_one_message_naming_the_fix(conn):
    _queue(conn)
    assert ops.resolve_queue(conn, "default") == "default"
    with pytest.raises(ops.UnknownQueue) as caught:
        ops.resolve_queue(conn, "nope")
    error = caught.value
    assert error.kind is ops.ErrorKind.NOT_FOUND and not error.unreachable
    assert str(error) == (
        'Unknown queue "nope" (queues: "default"). Create it with: absurd-tui queue create nope'
    )


def test_agent_queue_is_created_on_demand_but_no_other(conn):
    assert ops.resolve_agent_queue(conn) == "agents"
    assert "agents" in [r[0] for r in conn.execute("SELECT queue_name FROM absurd.queues")]
    with pytest.raises(ops.UnknownQueue):
        ops.resolve_agent_queue(conn, "elsewhere")
    spawned = ops.spawn_agent(conn, "hello", model="demo")
    assert spawned.queue == "agents" and spawned.created and spawned.attempt == 1


def test_resolve_task_by_id_prefix_and_short_id(conn):
    _queue(conn)
    spawned = ops.spawn(conn, "job", {"n": 1}, queue="default")
    full = str(spawned.task_id)
    for ref in (full, full[:13], full[-12:]):
        assert ops.resolve_task(conn, ref).task_id == spawned.task_id
    with pytest.raises(ops.TaskNotFound):
        ops.resolve_task(conn, str(uuid.uuid4()))
    with pytest.raises(ops.UnknownQueue):
        ops.resolve_task(conn, full, queue="nope")
    with pytest.raises(ops.TaskNotFound):
        ops.resolve_task(conn, "not an id")


def test_spawn_refuses_unknown_queue_and_bad_params_writing_nothing(conn):
    _queue(conn)
    with pytest.raises(ops.UnknownQueue):
        ops.spawn(conn, "job", {}, queue="nope")
    with pytest.raises(ops.BadInput):
        ops.spawn_batch(conn, "job", [{"ok": 1}, {"bad": object()}], queue="default")
    assert conn.execute("SELECT count(*) FROM absurd.t_default").fetchone() == (0,)


def test_spawn_with_an_idempotency_key_says_nothing_new_was_spawned(conn):
    _queue(conn)
    first = ops.spawn(conn, "job", {}, queue="default", idempotency_key="k1")
    again = ops.spawn(conn, "job", {}, queue="default", idempotency_key="k1")
    assert first.created and not again.created and again.task_id == first.task_id
    assert "nothing new was spawned" in again.message and '"k1"' in again.message


def test_repeated_emit_is_already_emitted_first_emit_wins(conn):
    _queue(conn)
    first = ops.emit(conn, "default", "go", {"n": 1})
    assert first.status is EmitStatus.EMITTED and first.changed
    assert first.message == 'Emitted "go" on queue "default".'
    again = ops.emit(conn, "default", "go", {"n": 2})
    assert again.status is EmitStatus.ALREADY_EMITTED and not again.changed and again.ok
    assert "already emitted" in again.message and "first emit wins" in again.message
    assert again.emitted_at == first.emitted_at
    payload = conn.execute("SELECT payload FROM absurd.e_default WHERE event_name = 'go'")
    assert payload.fetchone() == ({"n": 1},)


def test_emit_after_an_await_sentinel_is_a_real_emit(conn):
    # An await creates the event row with a NULL payload: emitting then is the first emit.
    _queue(conn)
    client = Absurd(conn, queue_name="default")
    client.spawn("waiter", {}, queue="default")
    run_id, task_id = _claim(conn)
    conn.execute(
        "SELECT * FROM absurd.await_event('default', %s, %s, 'wait', 'ready', NULL)",
        (task_id, run_id),
    )
    assert ops.emit(conn, "default", "ready", 1).status is EmitStatus.EMITTED
    assert ops.emit(conn, "default", "ready", 2).status is EmitStatus.ALREADY_EMITTED


def test_answer_twice_says_already_answered(conn):
    _queue(conn, "agents")
    assert ops.answer(conn, "agents", "ask#1", "yes").message.startswith("Answer sent")
    assert "already answered" in ops.answer(conn, "agents", "ask#1", "no").message
    with pytest.raises(ops.BadInput):
        ops.answer(conn, "agents", "ask#2", "  ")


def test_cancel_outcomes(conn):
    _queue(conn)
    live = ops.spawn(conn, "job", {}, queue="default")
    ref = ops.resolve_task(conn, str(live.task_id))
    outcome = ops.cancel(conn, ref)
    assert outcome.status is CancelStatus.CANCELLED and outcome.ok
    assert outcome.message == f'Task {live.task_id} ("job") cancelled.'
    # Already finished as last seen: nothing is asked of the engine.
    again = ops.cancel(conn, ops.resolve_task(conn, str(live.task_id)))
    assert again.status is CancelStatus.ALREADY_FINISHED and not again.ok
    assert again.message == f'Task {live.task_id} ("job") is already cancelled: nothing to cancel.'


def test_cancel_of_a_task_that_finished_meanwhile_is_not_called_cancelled(conn):
    _queue(conn)
    spawned = ops.spawn(conn, "job", {}, queue="default")
    seen = ops.resolve_task(conn, str(spawned.task_id))
    assert seen.state == "pending"
    run_id, _ = _claim(conn)
    _complete(conn, run_id)
    outcome = ops.cancel(conn, seen)
    assert outcome.status is CancelStatus.FINISHED_FIRST and not outcome.ok
    assert outcome.state == "completed"
    assert outcome.message == (
        f'Task {spawned.task_id} ("job") became completed before it could be cancelled.'
    )


def test_retry_outcomes(conn):
    _queue(conn)
    spawned = ops.spawn(conn, "job", {}, queue="default", max_attempts=1)
    pending = ops.resolve_task(conn, str(spawned.task_id))
    refused = ops.retry(conn, pending)
    assert refused.status is RetryStatus.NOT_FAILED and not refused.ok
    assert "is pending, not failed" in refused.message
    run_id, _ = _claim(conn)
    _fail(conn, run_id)
    failed = ops.resolve_task(conn, str(spawned.task_id))
    assert failed.state == "failed"
    retried = ops.retry(conn, failed)
    assert retried.status is RetryStatus.RETRIED and retried.attempt == 2
    assert retried.message == f"Task {spawned.task_id} is pending again as attempt 2."
    # The same (stale) ref again: the engine finds it pending and the outcome says so.
    stale = ops.retry(conn, failed)
    assert stale.status is RetryStatus.NOT_FAILED and stale.state == "pending"


def test_bulk_plan_and_run_with_progress(conn):
    _queue(conn)
    ids = [ops.spawn(conn, "job", {"n": n}, queue="default").task_id for n in range(3)]
    run_id, finished = _claim(conn)
    _complete(conn, run_id)
    plan = ops.plan_bulk(conn, "cancel", TaskFilter(queue="default"))
    assert {ref.task_id for ref in plan.tasks} == set(ids) - {finished}
    assert plan.question.startswith("Cancel 2 pending, running or sleeping tasks matching")
    seen: list[tuple[int, int]] = []
    result = ops.run_bulk(conn, plan, progress=lambda done, total: seen.append((done, total)))
    assert (result.done, result.skipped, result.stopped) == (2, 0, None)
    assert seen == [(1, 2), (2, 2)]
    assert result.message == "Cancel: 2 of 2 tasks done"
    # Planned again, nothing is live: an empty plan with its own sentence.
    empty = ops.plan_bulk(conn, "cancel", TaskFilter(queue="default"))
    assert empty.tasks == () and empty.empty_message.startswith("No pending, running or sleeping")
    # A stale plan skips what changed meanwhile, with the outcome's reason.
    rerun = ops.run_bulk(conn, plan)
    assert (rerun.done, rerun.skipped) == (0, 2)
    assert "nothing to cancel" in rerun.errors[0]


def test_policy():
    assert ops.can_retry("failed") and not ops.can_retry("pending")
    assert all(ops.can_cancel(s) for s in ("pending", "running", "sleeping"))
    assert not any(ops.can_cancel(s) for s in ("completed", "failed", "cancelled"))
    assert ops.bulk_states("retry", None) == ("failed",)
    assert ops.bulk_states("retry", "pending") == ()
    assert ops.bulk_states("cancel", "sleeping") == ("sleeping",)
    assert ops.retry_refusal("failed") is None and "pending" in ops.retry_refusal("pending")


def test_create_and_drop_queue_outcomes(conn):
    created = ops.create_queue(conn, "jobs")
    assert created.created and created.message == 'Queue "jobs" created.'
    again = ops.create_queue(conn, "jobs")
    assert not again.created and again.ok and again.message == 'Queue "jobs" already exists.'
    with pytest.raises(ops.BadInput):
        ops.create_queue(conn, "q" * 60)
    ops.spawn(conn, "job", {}, queue="jobs")
    dropped = ops.drop_queue(conn, "jobs")
    assert dropped.message == 'Queue "jobs" dropped (1 task(s)).'
    with pytest.raises(ops.UnknownQueue):
        ops.drop_queue(conn, "jobs")
