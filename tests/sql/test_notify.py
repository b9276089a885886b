"""NOTIFY on absurd_ready (work became claimable) and absurd_changed (a task changed state),
payload = the queue name, received by a LISTEN on another connection."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from .helpers import (
    await_event,
    cancel,
    claim_one,
    complete,
    create_queue,
    emit,
    fail,
    retry,
    schedule,
    spawn,
)

READY = "absurd_ready"
CHANGED = "absurd_changed"


class Listener:
    """LISTENs on both channels and keeps everything received, in order.

    start() opens a new session and LISTENs there: PostgreSQL only delivers notifications
    of transactions that commit after the LISTEN, so nothing sent by the test's set-up can
    be mistaken for the notification under test.
    """

    def __init__(self, connect):
        self._connect = connect
        self.conn: psycopg.Connection | None = None
        self.seen: list[tuple[str, str]] = []

    def start(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn = self._connect()
        self.seen = []
        self.conn.execute(f"LISTEN {READY}")
        self.conn.execute(f"LISTEN {CHANGED}")

    def received(self, timeout: float = 0.3) -> list[tuple[str, str]]:
        assert self.conn is not None
        new = [(n.channel, n.payload) for n in self.conn.notifies(timeout=timeout)]
        self.seen.extend(new)
        return new

    def expect(self, channel: str, payload: str, timeout: float = 5.0) -> None:
        assert self.conn is not None
        deadline = time.monotonic() + timeout
        while (channel, payload) not in self.seen:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"no {channel} notification with payload {payload!r}; saw {self.seen}"
                )
            for n in self.conn.notifies(timeout=remaining, stop_after=1):
                self.seen.append((n.channel, n.payload))


@pytest.fixture
def listener(connect):
    return Listener(connect)


QUEUE_NAMES = ["jobs", 'Odd "queue" name', "spaced out"]


@pytest.mark.parametrize("q", QUEUE_NAMES)
def test_spawn_notifies_ready_and_changed_with_the_queue_name(conn, listener, q):
    create_queue(conn, q)
    listener.start()
    spawn(conn, q)
    listener.expect(READY, q)
    listener.expect(CHANGED, q)


def test_retry_task_notifies_ready(conn, listener):
    create_queue(conn)
    spawned = spawn(conn, max_attempts=1)
    claim_one(conn)
    fail(conn, spawned.run_id)
    listener.start()
    retry(conn, spawned.task_id)
    listener.expect(READY, "jobs")


def test_retry_task_spawn_new_notifies_ready(conn, listener):
    create_queue(conn)
    spawned = spawn(conn, max_attempts=1)
    claim_one(conn)
    fail(conn, spawned.run_id)
    listener.start()
    retry(conn, spawned.task_id, spawn_new=True)
    listener.expect(READY, "jobs")


def test_immediate_retry_after_failure_notifies_ready(conn, listener):
    create_queue(conn)
    spawned = spawn(conn, max_attempts=2)
    claim_one(conn)
    listener.start()
    fail(conn, spawned.run_id)
    listener.expect(READY, "jobs")


def test_emit_waking_a_run_notifies_ready(conn, listener):
    create_queue(conn)
    spawned = spawn(conn)
    claim_one(conn)
    await_event(conn, spawned.task_id, spawned.run_id, "go", step="w")
    listener.start()
    emit(conn, "go", 1)
    listener.expect(READY, "jobs")
    listener.expect(CHANGED, "jobs")


def test_sleep_that_is_already_due_notifies_ready(conn, listener):
    create_queue(conn)
    spawned = spawn(conn)
    claim_one(conn)
    listener.start()
    schedule(conn, spawned.run_id, datetime.now(UTC) - timedelta(seconds=1))
    listener.expect(READY, "jobs")


def test_task_state_changes_notify_changed(conn, listener):
    create_queue(conn)
    actions = {
        "claim": lambda s: claim_one(conn),
        "schedule": lambda s: schedule(conn, s.run_id, datetime.now(UTC)),
        "complete": lambda s: complete(conn, s.run_id),
        "fail": lambda s: fail(conn, s.run_id),
        "cancel": lambda s: cancel(conn, s.task_id),
        "await": lambda s: await_event(conn, s.task_id, s.run_id, "e", step="w"),
    }
    for name, action in actions.items():
        spawned = spawn(conn, max_attempts=1)
        if name != "claim":
            claim_one(conn)
        listener.start()
        action(spawned)
        try:
            listener.expect(CHANGED, "jobs")
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from None
        if name in ("schedule", "await"):
            cancel(conn, spawned.task_id)  # out of the way of the next claim


def test_notifications_are_sent_on_commit_only(conn, listener):
    create_queue(conn)
    listener.start()
    with pytest.raises(RuntimeError), conn.transaction():
        spawn(conn)
        raise RuntimeError("roll back")
    assert listener.received() == []
    with conn.transaction():
        spawn(conn)
        assert listener.received(timeout=0.1) == []
    listener.expect(READY, "jobs")


def test_notifications_name_the_queue_they_concern(conn, listener):
    create_queue(conn, "alpha")
    create_queue(conn, "beta")
    listener.start()
    spawn(conn, "beta")
    got = listener.received(timeout=0.5)
    assert got, "no notification"
    assert {payload for _, payload in got} == {"beta"}
