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


def bring_to(conn, clock, q: str, start: str, options: dict) -> Subject:
    create_queue(conn, q)
    spawned = spawn(conn, q, **options)
    subject = Subject(spawned.task_id, spawned.run_id)
    if start == "pending":
        return subject
    if start == "cancelled":
        cancel(conn, subject.task_id, q=q)
        return subject
    claim_one(conn, q, worker="first", timeout=30)
    if start == "sleeping-timer":
        schedule(conn, subject.run_id, clock.now + timedelta(seconds=60), q=q)
    elif start == "sleeping-event":
        await_event(conn, subject.task_id, subject.run_id, "ev", step="w", q=q)
    elif start == "sleeping-event-timeout":
        await_event(conn, subject.task_id, subject.run_id, "ev", step="w", timeout=60, q=q)
    elif start == "completed":
        complete(conn, subject.run_id, "done", q=q)
    elif start == "failed":
        fail(conn, subject.run_id, q=q)
    assert run_row(conn, subject.run_id, q)["state"] == START_STATES[start]
    return subject


def act(conn, clock, q: str, action: str, s: Subject) -> Any:
    if action == "claim":
        clock.advance(61)
        return claim(conn, q, worker="second", qty=5)
    if action == "schedule":
        return schedule(conn, s.run_id, clock.now + timedelta(seconds=60), q=q)
    if action == "await":
        return await_event(conn, s.task_id, s.run_id, "other", step="w2", q=q)
    if action == "await-timeout":
        return await_event(conn, s.task_id, s.run_id, "other", step="w2", timeout=30, q=q)
    if action == "emit":
        return emit(conn, "ev", {"delivered": True}, q=q)
    if action == "complete":
        return complete(conn, s.run_id, "result", q=q)
    if action == "fail":
        return fail(conn, s.run_id, q=q)
    if action == "cancel":
        return cancel(conn, s.task_id, q=q)
    if action == "retry":
        return retry(conn, s.task_id, q=q)
    if action == "expire":
        clock.advance(30)
        return claim(conn, q, worker="second")
    if action == "policy-sweep":
        clock.advance(11)
        return claim(conn, q, worker="second")
    raise AssertionError(action)


def each_case(cases, check) -> None:
    """Run every row in its own queue and report all failing rows together."""
    failures = []
    for number, case in enumerate(cases):
        try:
            check(f"case-{number}", case)
        except (
            Exception,
            pytest.fail.Exception,
        ) as exc:  # collected: one run shows every broken row
            failures.append(f"{case}: {type(exc).__name__}: {exc}")
    assert not failures, f"{len(failures)} of {len(cases)} rows failed:\n" + "\n".join(failures)


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
    Move(
        "running",
        "fail",
        "failed",
        "sleeping",
        "sleeping",
        {"max_attempts": 2, "retry_strategy": FIXED_10},
    ),
    Move("running", "fail", "failed", "failed", None, {"max_attempts": 1}),
    Move("sleeping-timer", "fail", "failed", "pending", "pending", {"max_attempts": 2}),
    Move("sleeping-event", "fail", "failed", "failed", None, {"max_attempts": 1}),
    Move(
        "running",
        "fail",
        "failed",
        "cancelled",
        None,
        {"retry_strategy": FIXED_10, "cancellation": {"max_duration": 5}},
    ),
    Move("running", "expire", "failed", "running", "running"),
    Move("running", "expire", "failed", "failed", None, {"max_attempts": 1}),
    Move("pending", "cancel", "cancelled", "cancelled"),
    Move("running", "cancel", "cancelled", "cancelled"),
    Move("sleeping-timer", "cancel", "cancelled", "cancelled"),
    Move("sleeping-event", "cancel", "cancelled", "cancelled"),
    Move(
        "pending",
        "policy-sweep",
        "cancelled",
        "cancelled",
        None,
        {"cancellation": {"max_delay": 10}},
    ),
    Move(
        "running",
        "policy-sweep",
        "cancelled",
        "cancelled",
        None,
        {"cancellation": {"max_duration": 10}},
    ),
    Move(
        "sleeping-timer",
        "policy-sweep",
        "cancelled",
        "cancelled",
        None,
        {"cancellation": {"max_duration": 10}},
    ),
    Move(
        "sleeping-event",
        "policy-sweep",
        "cancelled",
        "cancelled",
        None,
        {"cancellation": {"max_duration": 10}},
    ),
    Move("failed", "retry", "failed", "pending", "pending", {"max_attempts": 1}),
    # Terminal states stay put.
    Move("completed", "cancel", "completed", "completed"),
    Move("failed", "cancel", "failed", "failed", None, {"max_attempts": 1}),
    Move("cancelled", "cancel", "cancelled", "cancelled"),
    Move("completed", "claim", "completed", "completed"),
    Move("failed", "claim", "failed", "failed", None, {"max_attempts": 1}),
    Move("cancelled", "claim", "cancelled", "cancelled"),
    Move("completed", "emit", "completed", "completed"),
    Move(
        "sleeping-event",
        "policy-sweep",
        "sleeping",
        "sleeping",
        None,
        {"cancellation": {"max_delay": 10}},
    ),
]


def test_every_transition(conn):
    clock = FakeClock(conn)

    def check(q: str, move: Move) -> None:
        subject = bring_to(conn, clock, q, move.start, move.options)
        cancelled_before = task_row(conn, subject.task_id, q)["cancelled_at"]
        act(conn, clock, q, move.action, subject)
        assert run_row(conn, subject.run_id, q)["state"] == move.run, "subject run state"
        task = task_row(conn, subject.task_id, q)
        assert task["state"] == move.task, f"task state {task['state']!r}"
        runs = runs_of(conn, subject.task_id, q)
        if move.new_run is None:
            assert [r["run_id"] for r in runs] == [subject.run_id], "no new run expected"
            assert task["last_attempt_run"] == subject.run_id
        else:
            assert len(runs) == 2, f"{len(runs)} runs"
            new = runs[-1]
            assert new["run_id"] != subject.run_id
            assert new["attempt"] == 2
            assert new["state"] == move.new_run, f"new run state {new['state']!r}"
            assert task["last_attempt_run"] == new["run_id"]
            assert task["attempts"] == 2
        if move.task == "cancelled":
            assert task["cancelled_at"] == (cancelled_before or clock.now), "cancelled_at"
        if move.run == "running":
            assert runs[-1]["claimed_by"] == "second"

    each_case(MOVES, check)


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
NOT_RUNNING = 'Run "{run}" is not currently running in queue "{q}"'
CANNOT_FAIL = 'Run "{run}" cannot be failed in queue "{q}"'
ALREADY_FAILED = 'Run "{run}" has already failed in queue "{q}"'
CANCELLED = "Task has been cancelled"
MUST_RUN = 'Run "{run}" must be running to await events'
NOT_FAILED = 'Task "{task}" is not currently failed in queue "{q}"'

REFUSALS = [
    Refusal("pending", "complete", "P0001", NOT_RUNNING),
    Refusal("sleeping-timer", "complete", "P0001", NOT_RUNNING),
    Refusal("sleeping-event", "complete", "P0001", NOT_RUNNING),
    Refusal("completed", "complete", "P0001", NOT_RUNNING),
    Refusal("failed", "complete", "AB002", ALREADY_FAILED, ONE),
    Refusal("cancelled", "complete", "AB001", CANCELLED),
    Refusal("pending", "fail", "P0001", CANNOT_FAIL),
    Refusal("completed", "fail", "P0001", CANNOT_FAIL),
    Refusal("failed", "fail", "AB002", ALREADY_FAILED, ONE),
    Refusal("cancelled", "fail", "AB001", CANCELLED),
    Refusal("pending", "schedule", "P0001", NOT_RUNNING),
    Refusal("sleeping-timer", "schedule", "P0001", NOT_RUNNING),
    Refusal("sleeping-event", "schedule", "P0001", NOT_RUNNING),
    Refusal("completed", "schedule", "P0001", NOT_RUNNING),
    Refusal("failed", "schedule", "P0001", NOT_RUNNING, ONE),
    Refusal("cancelled", "schedule", "P0001", NOT_RUNNING),
    Refusal("pending", "await", "P0001", MUST_RUN),
    Refusal("sleeping-timer", "await", "P0001", MUST_RUN),
    Refusal("completed", "await", "P0001", MUST_RUN),
    Refusal("failed", "await", "P0001", MUST_RUN, ONE),
    Refusal("cancelled", "await", "AB001", CANCELLED),
    Refusal("pending", "retry", "P0001", NOT_FAILED),
    Refusal("running", "retry", "P0001", NOT_FAILED),
    Refusal("sleeping-timer", "retry", "P0001", NOT_FAILED),
    Refusal("sleeping-event", "retry", "P0001", NOT_FAILED),
    Refusal("completed", "retry", "P0001", NOT_FAILED),
    Refusal("cancelled", "retry", "P0001", NOT_FAILED),
]


def test_every_refused_transition_changes_nothing(conn):
    clock = FakeClock(conn)

    def check(q: str, refusal: Refusal) -> None:
        subject = bring_to(conn, clock, q, refusal.start, refusal.options)
        before_task = task_row(conn, subject.task_id, q)
        before_runs = runs_of(conn, subject.task_id, q)
        message = refusal.message.format(run=subject.run_id, task=subject.task_id, q=q)
        with raises_db(refusal.sqlstate, message):
            act(conn, clock, q, refusal.action, subject)
        assert task_row(conn, subject.task_id, q) == before_task
        assert runs_of(conn, subject.task_id, q) == before_runs

    each_case(REFUSALS, check)
