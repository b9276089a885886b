"""db/reads.py against real PostgreSQL: the queries the TUI and the CLI share."""

from __future__ import annotations

import uuid

import pytest

from absurd_tui.db import reads
from absurd_tui.db.models import FILE_CHECKPOINT_PREFIX
from absurd_tui.db.reads import COUNT_CAP, Count, TaskFilter
from absurd_tui.sdk import Absurd, TaskRegistry
from absurd_tui.text import count_label


@pytest.fixture
def client(conn):
    c = Absurd(conn, registry=TaskRegistry())
    c.create_queue("default")
    c.create_queue("other")
    return c


def spawn(client, name="job", queue="default", params=None, **kw):
    return uuid.UUID(
        client.spawn(name, params if params is not None else {}, queue=queue, **kw).task_id
    )


def claim(conn, queue="default", worker="w1", qty=1, timeout=60):
    return conn.execute(
        "SELECT run_id, task_id FROM absurd.claim_task(%s, %s, %s, %s)",
        (queue, worker, timeout, qty),
    ).fetchall()


def test_queue_summaries_count_every_state(conn, client):
    # No backoff, so the failed run's retry is pending at once.
    spawn(client, retry_strategy={"kind": "none"})
    spawn(client, retry_strategy={"kind": "none"})
    running = spawn(client, "r")
    # Claim the oldest pending run: the first one.
    ((run_id, _task_id),) = claim(conn)
    conn.execute("SELECT absurd.complete_run('default', %s, '{\"ok\": true}')", (run_id,))
    ((run2, _task2),) = claim(conn)
    conn.execute(
        'SELECT absurd.fail_run(\'default\', %s, \'{"name": "E", "message": "x"}\')', (run2,)
    )
    spawn(client, "other-queue", queue="other")
    summaries = {s.queue: s for s in reads.queue_summaries(conn)}
    default = summaries["default"]
    assert default.count("completed") == Count(1)
    # The failed run had attempts left (default 5): the task is pending again.
    assert default.count("pending").value == 2
    assert default.count("failed").value == 0
    assert default.claimable.value == 2
    assert default.oldest_claimable_at is not None
    assert summaries["other"].count("pending") == Count(1)
    assert default.total.value == 3
    assert running


def test_list_tasks_pages_newest_first_with_current_step(conn, client):
    ids = [spawn(client, f"t{i}") for i in range(7)]
    ((run_id, task_id),) = claim(conn)
    conn.execute(
        "SELECT absurd.set_task_checkpoint_state('default', %s, 'fetch', '1', %s, 60)",
        (task_id, run_id),
    )
    conn.execute(
        "SELECT absurd.set_task_checkpoint_state('default', %s, 'fetch#2', '2', %s, 60)",
        (task_id, run_id),
    )
    page = reads.list_tasks(conn, TaskFilter(queue="default"), limit=3)
    assert [r.task_id for r in page.rows] == ids[::-1][:3]
    assert page.matches == Count(7)
    page2 = reads.list_tasks(conn, TaskFilter(queue="default"), limit=3, after=page.next_after)
    assert [r.task_id for r in page2.rows] == ids[::-1][3:6]
    last = reads.list_tasks(conn, TaskFilter(queue="default"), limit=3, after=page2.next_after)
    assert [r.task_id for r in last.rows] == [ids[0]]
    assert last.next_after is None
    row = last.rows[0]
    assert row.task_id == task_id and row.state == "running"
    assert row.step == "fetch#2" and row.worker == "w1"


def test_list_tasks_step_is_never_a_stored_file(conn, client):
    spawn(client)
    ((run_id, task_id),) = claim(conn)
    conn.execute(
        "SELECT absurd.set_task_checkpoint_state('default', %s, 'call', '1', %s, 60)",
        (task_id, run_id),
    )
    # What the code interpreter writes while a call stores a file, after the call began.
    conn.execute(
        "SELECT absurd.set_task_checkpoint_state('default', %s, %s, '{}', %s, 60)",
        (task_id, f"{FILE_CHECKPOINT_PREFIX}{'0' * 64}", run_id),
    )
    (row,) = reads.list_tasks(conn, TaskFilter(queue="default")).rows
    assert row.step == "call"


def test_list_tasks_filters_state_name_and_search(conn, client):
    a = spawn(client, "alpha")
    b = spawn(client, "beta")
    spawn(client, "alpha-2", queue="other")
    ((_run_id, task_id),) = claim(conn)
    assert task_id == a
    by_state = reads.list_tasks(conn, TaskFilter(state="running"))
    assert [r.task_id for r in by_state.rows] == [a]
    by_name = reads.list_tasks(conn, TaskFilter(name="alpha"))
    assert {r.task_name for r in by_name.rows} == {"alpha", "alpha-2"}
    assert by_name.matches == Count(2)
    by_prefix = reads.list_tasks(conn, TaskFilter(search=str(b)[:30]))
    assert [r.task_id for r in by_prefix.rows] == [b]
    assert [r.task_id for r in reads.tasks_with_id_tail(conn, reads.short_id(b))] == [b]
    # LIKE metacharacters in a search are literal.
    assert reads.list_tasks(conn, TaskFilter(name="al%")).rows == ()


def test_capped_count_says_ten_thousand_plus(conn, client):
    conn.execute(
        """SELECT absurd.spawn_task('default', 'bulk', '{}'::jsonb) FROM generate_series(1, %s)""",
        (COUNT_CAP + 5,),
    )
    count = reads.count_tasks(conn, TaskFilter(queue="default", name="bulk"))
    assert count.capped and count_label(count) == "10,000+"
    summary = reads.queue_summary(conn, "default")
    assert count_label(summary.count("pending")) == "10,000+"


def test_terminal_counts_are_estimated_on_big_tables(conn, client):
    conn.execute(
        """INSERT INTO absurd.t_default (task_id, task_name, params, enqueue_at, state, attempts)
           SELECT absurd.portable_uuidv7(), 'old', '{}', now(), 'completed', 1
           FROM generate_series(1, 20000)"""
    )
    conn.execute("ANALYZE absurd.t_default")
    completed = reads.queue_summary(conn, "default").count("completed")
    assert completed.estimated
    assert 15_000 < completed.value < 25_000
    assert count_label(completed).startswith("~")


def test_task_detail_runs_checkpoints_and_waits(conn, client):
    task = spawn(client, "detail", params={"x": "[bold]y[/]"})
    ((run_id, _),) = claim(conn)
    conn.execute(
        "SELECT absurd.set_task_checkpoint_state('default', %s, 'one', '{\"v\": 1}', %s, 60)",
        (task, run_id),
    )
    conn.execute(
        "SELECT * FROM absurd.await_event('default', %s, %s, 'wait', 'go', 30)", (task, run_id)
    )
    detail = reads.task_detail(conn, "default", task)
    assert detail.state == "sleeping" and detail.params == {"x": "[bold]y[/]"}
    assert [c.name for c in detail.checkpoints] == ["one"]
    assert detail.checkpoints[0].owner_attempt == 1
    assert [(w.event_name, w.step_name) for w in detail.waits] == [("go", "wait")]
    assert [r.attempt for r in detail.runs] == [1]
    waits = reads.pending_waits(conn)
    assert [(w.queue, w.task_id, w.event_name) for w in waits] == [("default", task, "go")]
    client.emit_event("go", {"ok": 1}, queue_name="default")
    assert reads.pending_waits(conn) == []
    events = reads.emitted_events(conn)
    assert [(e.event_name, e.payload) for e in events] == [("go", {"ok": 1})]
    assert reads.task_detail(conn, "default", uuid.uuid4()) is None
    assert reads.task_detail(conn, "missing-queue", task) is None


def test_find_task_by_prefix_tail_and_ambiguity(conn, client):
    a = spawn(client)
    b = spawn(client, queue="other")
    assert reads.find_task(conn, str(a)).task_id == a
    assert reads.find_task(conn, str(b)[:-4]).queue == "other"
    assert reads.find_task(conn, reads.short_id(a)).task_id == a
    with pytest.raises(reads.AmbiguousTaskId) as err:
        reads.find_task(conn, str(a)[:4])
    assert {m.task_id for m in err.value.matches} == {a, b}
    with pytest.raises(reads.TaskNotFound):
        reads.find_task(conn, "ffffffff")
    with pytest.raises(reads.TaskNotFound):
        reads.find_task(conn, "not-an-id")


def test_workers_seen_lists_claimers(conn, client):
    spawn(client)
    spawn(client)
    claim(conn, worker="host:1")
    claim(conn, worker="host:2")
    seen = reads.workers_seen(conn)
    assert [(w.worker, w.running, w.queues) for w in seen] == [
        ("host:1", 1, ("default",)),
        ("host:2", 1, ("default",)),
    ]
    assert all(w.lease_expires_at is not None for w in seen)


def test_list_task_ids_for_bulk(conn, client):
    ids = {spawn(client) for _ in range(3)}
    refs = reads.list_task_ids(conn, TaskFilter(queue="default", state="pending"))
    assert {r.task_id for r in refs} == ids


def test_event_wait_without_timeout_lists_and_details(conn, client):
    # The run's available_at is 'infinity', which Python datetimes cannot hold.
    task = spawn(client, "forever")
    ((run_id, _),) = claim(conn)
    conn.execute(
        "SELECT * FROM absurd.await_event('default', %s, %s, 'wait', 'never', NULL)", (task, run_id)
    )
    (row,) = reads.list_tasks(conn).rows
    assert row.state == "sleeping" and row.available_at is None and row.wake_event == "never"
    detail = reads.task_detail(conn, "default", task)
    assert detail.runs[0].available_at is None
    assert detail.waits[0].timeout_at is None


def test_live_source_resolves_a_short_id_search_once(db_dsn, client):
    from absurd_tui.ui.source import LiveSource

    a = spawn(client, "alpha")
    spawn(client, "beta")
    source = LiveSource(db_dsn, "test")
    try:
        snapshot = source.tasks(TaskFilter(search=reads.short_id(a)), 100, None, True)
        assert [r.task_id for r in snapshot.page.rows] == [a]
        assert snapshot.page.matches == Count(1)
        assert list(source._tails) == [reads.short_id(a)]
    finally:
        source.close()


CONTRACT_COLUMNS = {
    "t": {
        "task_id",
        "task_name",
        "params",
        "headers",
        "retry_strategy",
        "max_attempts",
        "cancellation",
        "enqueue_at",
        "first_started_at",
        "state",
        "attempts",
        "last_attempt_run",
        "completed_payload",
        "cancelled_at",
        "idempotency_key",
    },
    "r": {
        "run_id",
        "task_id",
        "attempt",
        "state",
        "claimed_by",
        "claim_expires_at",
        "available_at",
        "wake_event",
        "event_payload",
        "started_at",
        "completed_at",
        "failed_at",
        "result",
        "failure_reason",
        "created_at",
    },
    "c": {"task_id", "checkpoint_name", "state", "status", "owner_run_id", "updated_at"},
    "e": {"event_name", "payload", "emitted_at"},
    "w": {"run_id", "step_name", "task_id", "event_name", "timeout_at", "created_at"},
}


def test_reads_work_on_upstream_shaped_tables(conn, client):
    """Only the contract's columns, and upstream's index layout instead of ours."""
    from psycopg import sql

    done = spawn(client, "done")
    waiting = spawn(client, "waiting")
    ((run1, t1),) = claim(conn)
    conn.execute("SELECT absurd.complete_run('default', %s, '1')", (run1,))
    ((run2, t2),) = claim(conn)
    conn.execute("SELECT * FROM absurd.await_event('default', %s, %s, 'w', 'go', NULL)", (t2, run2))
    client.emit_event("other", {"x": 1}, queue_name="default")
    assert (t1, t2) == (done, waiting)

    for prefix, allowed in CONTRACT_COLUMNS.items():
        table = f"{prefix}_default"
        columns = [
            r[0]
            for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = 'absurd' AND table_name = %s",
                (table,),
            )
        ]
        for column in set(columns) - allowed:
            conn.execute(
                sql.SQL("ALTER TABLE {} DROP COLUMN {} CASCADE").format(
                    sql.Identifier("absurd", table), sql.Identifier(column)
                )
            )
    for (index,) in conn.execute(
        "SELECT indexname FROM pg_indexes WHERE schemaname = 'absurd' AND tablename LIKE '%%_default'"
        " AND indexname NOT LIKE '%%pkey' AND indexname NOT LIKE '%%key'"
    ).fetchall():
        conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier("absurd", index)))
    conn.execute("CREATE INDEX r_default_sai ON absurd.r_default (state, available_at)")
    conn.execute("CREATE INDEX r_default_ti ON absurd.r_default (task_id)")
    conn.execute(
        "CREATE INDEX r_default_cei ON absurd.r_default (claim_expires_at)"
        " WHERE state = 'running' AND claim_expires_at IS NOT NULL"
    )
    conn.execute("CREATE INDEX w_default_eni ON absurd.w_default (event_name)")
    conn.execute("CREATE INDEX w_default_ti ON absurd.w_default (task_id)")
    conn.execute("CREATE INDEX e_default_eai ON absurd.e_default (emitted_at)")

    summary = {s.queue: s for s in reads.queue_summaries(conn)}["default"]
    assert summary.count("completed") == Count(1) and summary.count("sleeping") == Count(1)
    page = reads.list_tasks(conn, TaskFilter(queue="default"))
    assert [r.task_id for r in page.rows] == [waiting, done]
    assert [r.task_id for r in reads.list_tasks(conn, TaskFilter(state="sleeping")).rows] == [
        waiting
    ]
    detail = reads.task_detail(conn, "default", waiting)
    assert detail.waits[0].event_name == "go"
    assert [w.task_id for w in reads.pending_waits(conn)] == [waiting]
    assert [e.event_name for e in reads.emitted_events(conn)] == ["other"]
    assert reads.workers_seen(conn) == []
    assert reads.find_task(conn, str(done)[:30]).task_id == done
