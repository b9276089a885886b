"""The task detail read (db.reads) that the console, ``show`` and the agent transcript
share is one consistent snapshot, even while a worker commits."""

from __future__ import annotations

import threading
import uuid

from support import wait_until

from absurd_tui.db import reads
from absurd_tui.sdk import Absurd


def _blocked_on_lock(observer, pid: int) -> bool:
    row = observer.execute(
        "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)
    ).fetchone()
    return bool(row) and row[0] == "Lock"


def test_detail_does_not_mix_before_and_after_a_commit(connect):
    setup, reader, writer, observer = connect(), connect(), connect(autocommit=False), connect()
    client = Absurd(setup, queue_name="default")
    client.create_queue("default")
    task_id = uuid.UUID(client.spawn("job", {}, queue="default").task_id)
    # The writer takes the checkpoint table first, so the reader gets through the task
    # and run rows and then waits; meanwhile the writer completes the task with a step.
    writer.execute("LOCK TABLE absurd.c_default IN ACCESS EXCLUSIVE MODE")
    result: dict[str, object] = {}

    def read() -> None:
        result["detail"] = reads.task_detail(reader, "default", task_id)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    pid = reader.info.backend_pid
    wait_until(lambda: _blocked_on_lock(observer, pid), what="the reader at the lock")
    writer.execute(
        "INSERT INTO absurd.c_default (task_id, checkpoint_name, state, status, updated_at) "
        "VALUES (%s, 'step', '1'::jsonb, 'committed', now())",
        (task_id,),
    )
    writer.execute("UPDATE absurd.t_default SET state = 'completed' WHERE task_id = %s", (task_id,))
    writer.commit()
    thread.join(10)
    assert not thread.is_alive()
    detail = result["detail"]
    assert isinstance(detail, reads.TaskDetail)
    # All from before the commit: pending with no checkpoint (read committed per
    # statement would show the new checkpoint on a still-pending task).
    assert detail.state == "pending"
    assert detail.checkpoints == ()
    assert detail.read_at is not None
    # And a fresh read sees the whole commit.
    after = reads.task_detail(reader, "default", task_id)
    assert after is not None and after.state == "completed"
    assert [c.name for c in after.checkpoints] == ["step"]


def test_detail_joins_a_transaction_already_open(conn):
    client = Absurd(conn, queue_name="default")
    client.create_queue("default")
    task_id = client.spawn("job", {}, queue="default").task_id
    with conn.transaction():
        detail = reads.task_detail(conn, "default", task_id)
        assert detail is not None and detail.task_name == "job"
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_checkpoint_limit_none_reads_every_checkpoint(conn):
    client = Absurd(conn, queue_name="default")
    client.create_queue("default")
    task_id = uuid.UUID(client.spawn("job", {}, queue="default").task_id)
    conn.execute(
        "INSERT INTO absurd.c_default (task_id, checkpoint_name, state, status, updated_at) "
        "SELECT %s, 'step#' || n, to_jsonb(n), 'committed', now() + n * interval '1 ms' "
        "FROM generate_series(1, 5) AS n",
        (task_id,),
    )
    limited = reads.task_detail(conn, "default", task_id, checkpoint_limit=3)
    assert limited is not None and len(limited.checkpoints) == 3 and limited.checkpoints_truncated
    full = reads.task_detail(conn, "default", task_id, checkpoint_limit=None)
    assert full is not None and len(full.checkpoints) == 5 and not full.checkpoints_truncated
