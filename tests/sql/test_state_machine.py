"""Every run and task transition of contract section 5, and the illegal ones, as tables."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest

from .helpers import (
    FakeClock,
    await_event,
    cancel,
    claim,
    claim_one,
    complete,
    create_queue,
    emit,
    fail,
    raises_db,
    retry,
    run_row,
    runs_of,
    schedule,
    spawn,
    task_row,
)

START_STATES = {
    "pending": "pending",
    "running": "running",
    "sleeping-timer": "sleeping",
    "sleeping-event": "sleeping",
    "sleeping-event-timeout": "sleeping",
    "completed": "completed",
    "failed": "failed",
    "cancelled": "cancelled",
}


@dataclass(frozen=True)
class Subject:
    task_id: UUID
    run_id: UUID


def bring_to(conn, clock, start: str, options: dict) -> Subject:
    spawned = spawn(conn, **options)
    subject = Subject(spawned.task_id, spawned.run_id)
    if start == "pending":
        return subject
    if start == "cancelled":
        cancel(conn, subject.task_id)
        return subject
    claim_one(conn, worker="first", timeout=30)
    if start == "sleeping-timer":
        schedule(conn, subject.run_id, clock.now + timedelta(seconds=60))
    elif start == "sleeping-event":
        await_event(conn, subject.task_id, subject.run_id, "ev", step="w")
    elif start == "sleeping-event-timeout":
        await_event(conn, subject.task_id, subject.run_id, "ev", step="w", timeout=60)
    elif start == "completed":
        complete(conn, subject.run_id, "done")
    elif start == "failed":
        fail(conn, subject.run_id)
    assert run_row(conn, subject.run_id)["state"] == START_STATES[start]
    return subject


def act(conn, clock, action: str, s: Subject) -> Any:
    if action == "claim":
        clock.advance(61)
        return claim(conn, worker="second", qty=5)
    if action == "schedule":
        return schedule(conn, s.run_id, clock.now + timedelta(seconds=60))
    if action == "await":
        return await_event(conn, s.task_id, s.run_id, "other", step="w2")
    if action == "await-timeout":
        return await_event(conn, s.task_id, s.run_id, "other", step="w2", timeout=30)
    if action == "emit":
        return emit(conn, "ev", {"delivered": True})
    if action == "complete":
        return complete(conn, s.run_id, "result")
    if action == "fail":
        return fail(conn, s.run_id)
    if action == "cancel":
        return cancel(conn, s.task_id)
    if action == "retry":
        return retry(conn, s.task_id)
    if action == "expire":
        clock.advance(30)
        return claim(conn, worker="second")
    if action == "policy-sweep":
        clock.advance(11)
        return claim(conn, worker="second")
    raise AssertionError(action)


@dataclass(frozen=True)
class Move:
    start: str
    action: str
    run: str
    task: str
    new_run: str | None = None
    options: dict = field(default_factory=dict)

    def __str__(self) -> str:
        extra = ",".join(sorted(self.options)) if self.options else ""
        return f"{self.start}--{self.action}{'[' + extra + ']' if extra else ''}"


FIXED_10 = {"kind": "fixed", "base_seconds": 10}

MOVES = [
    # spawn is covered by every row: the subject starts pending.
    Move("pending", "claim", "running", "running"),
    Move("sleeping-timer", "claim", "running", "running"),
    Move("sleeping-event-timeout", "claim", "running", "running"),
    Move("running", "schedule", "sleeping", "sleeping"),
    Move("running", "await", "sleeping", "sleeping"),
    Move("running", "await-timeout", "sleeping", "sleeping"),
    Move("sleeping-event", "emit", "pending", "pending"),
    Move("sleeping-event-timeout", "emit", "pending", "pending"),
    Move("running", "complete", "completed", "completed"),
    Move("running", "fail", "failed", "pending", "pending", {"max_attempts": 2}),
    Move("running", "fail", "failed", "sleeping", "sleeping", {"max_attempts": 2, "retry_strategy": FIXED_10}),
    Move("running", "fail", "failed", "failed", None, {"max_attempts": 1}),
    Move("sleeping-timer", "fail", "failed", "pending", "pending", {"max_attempts": 2}),
    Move("sleeping-event", "fail", "failed", "failed", None, {"max_attempts": 1}),
    Move("running", "fail", "failed", "cancelled", None,
         {"retry_strategy": FIXED_10, "cancellation": {"max_duration": 5}}),
    Move("running", "expire", "failed", "running", "running"),
    Move("running", "expire", "failed", "failed", None, {"max_attempts": 1}),
    Move("pending", "cancel", "cancelled", "cancelled"),
    Move("running", "cancel", "cancelled", "cancelled"),
    Move("sleeping-timer", "cancel", "cancelled", "cancelled"),
    Move("sleeping-event", "cancel", "cancelled", "cancelled"),
    Move("pending", "policy-sweep", "cancelled", "cancelled", None, {"cancellation": {"max_delay": 10}}),
    Move("running", "policy-sweep", "cancelled", "cancelled", None, {"cancellation": {"max_duration": 10}}),
    Move("sleeping-timer", "policy-sweep", "cancelled", "cancelled", None, {"cancellation": {"max_duration": 10}}),
    Move("sleeping-event", "policy-sweep", "cancelled", "cancelled", None, {"cancellation": {"max_duration": 10}}),
    Move("failed", "retry", "failed", "pending", "pending", {"max_attempts": 1}),
    # Terminal states stay put.
    Move("completed", "cancel", "completed", "completed"),
    Move("failed", "cancel", "failed", "failed", None, {"max_attempts": 1}),
    Move("cancelled", "cancel", "cancelled", "cancelled"),
    Move("completed", "claim", "completed", "completed"),
    Move("failed", "claim", "failed", "failed", None, {"max_attempts": 1}),
    Move("cancelled", "claim", "cancelled", "cancelled"),
    Move("completed", "emit", "completed", "completed"),
    Move("sleeping-event", "policy-sweep", "sleeping", "sleeping", None, {"cancellation": {"max_delay": 10}}),
]


@pytest.fixture
def clock(conn):
    create_queue(conn)
    return FakeClock(conn)


@pytest.mark.parametrize("move", MOVES, ids=str)
def test_transition(conn, clock, move: Move):
    subject = bring_to(conn, clock, move.start, move.options)
    cancelled_before = task_row(conn, subject.task_id)["cancelled_at"]
    act(conn, clock, move.action, subject)
    assert run_row(conn, subject.run_id)["state"] == move.run
    task = task_row(conn, subject.task_id)
    assert task["state"] == move.task
    runs = runs_of(conn, subject.task_id)
    if move.new_run is None:
        assert [r["run_id"] for r in runs] == [subject.run_id], "no new run expected"
        assert task["last_attempt_run"] == subject.run_id
    else:
        assert len(runs) == 2
        new = runs[-1]
        assert new["run_id"] != subject.run_id
        assert new["attempt"] == 2
        assert new["state"] == move.new_run
        assert task["last_attempt_run"] == new["run_id"]
        assert task["attempts"] == 2
    if move.task == "cancelled":
        assert task["cancelled_at"] == (cancelled_before or clock.now)
    if move.run == "running":
        assert runs[-1]["claimed_by"] == "second"


@dataclass(frozen=True)
class Refusal:
    start: str
    action: str
    sqlstate: str
    message: str
    options: dict = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.start}--{self.action}"


ONE = {"max_attempts": 1}

REFUSALS = [
    Refusal("pending", "complete", "P0001", "is not currently running"),
    Refusal("sleeping-timer", "complete", "P0001", "is not currently running"),
    Refusal("sleeping-event", "complete", "P0001", "is not currently running"),
    Refusal("completed", "complete", "P0001", "is not currently running"),
    Refusal("failed", "complete", "AB002", "has already failed", ONE),
    Refusal("cancelled", "complete", "AB001", "Task has been cancelled"),
    Refusal("pending", "fail", "P0001", "cannot be failed"),
    Refusal("completed", "fail", "P0001", "cannot be failed"),
    Refusal("failed", "fail", "AB002", "has already failed", ONE),
    Refusal("cancelled", "fail", "AB001", "Task has been cancelled"),
    Refusal("pending", "schedule", "P0001", "is not currently running"),
    Refusal("sleeping-timer", "schedule", "P0001", "is not currently running"),
    Refusal("completed", "schedule", "P0001", "is not currently running"),
    Refusal("failed", "schedule", "P0001", "is not currently running", ONE),
    Refusal("cancelled", "schedule", "P0001", "is not currently running"),
    Refusal("pending", "await", "P0001", "must be running to await events"),
    Refusal("sleeping-timer", "await", "P0001", "must be running to await events"),
    Refusal("completed", "await", "P0001", "must be running to await events"),
    Refusal("failed", "await", "P0001", "must be running to await events", ONE),
    Refusal("cancelled", "await", "AB001", "Task has been cancelled"),
    Refusal("pending", "retry", "P0001", "is not currently failed"),
    Refusal("running", "retry", "P0001", "is not currently failed"),
    Refusal("sleeping-event", "retry", "P0001", "is not currently failed"),
    Refusal("completed", "retry", "P0001", "is not currently failed"),
    Refusal("cancelled", "retry", "P0001", "is not currently failed"),
]


@pytest.mark.parametrize("refusal", REFUSALS, ids=str)
def test_refused_transition_changes_nothing(conn, clock, refusal: Refusal):
    subject = bring_to(conn, clock, refusal.start, refusal.options)
    before_task = task_row(conn, subject.task_id)
    before_runs = runs_of(conn, subject.task_id)
    with raises_db(refusal.sqlstate, refusal.message):
        act(conn, clock, refusal.action, subject)
    assert task_row(conn, subject.task_id) == before_task
    assert runs_of(conn, subject.task_id) == before_runs
