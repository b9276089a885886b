"""Deterministic data for the snapshot tests (and only for them).

Snapshots must render the same on every run: fixed ids, a frozen clock, no database
timing. Behaviour is tested against real PostgreSQL and real workers in the pilot
tests; these fakes exist only so the pictures are stable.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from absurd_tui import ops
from absurd_tui.db.errors import DatabaseUnavailable
from absurd_tui.db.reads import (
    STATES,
    CheckpointInfo,
    Count,
    EventInfo,
    QueueSummary,
    RunInfo,
    TaskDetail,
    TaskFilter,
    TaskPage,
    TaskRef,
    TaskRow,
    WaitInfo,
    WorkerSeen,
)
from absurd_tui.ui.source import (
    BulkPlan,
    BulkResult,
    EventsSnapshot,
    TasksSnapshot,
    TaskType,
)

NOW = datetime(2026, 1, 15, 12, 0, 0, tzinfo=UTC)
MONOTONIC = 1000.0


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def tid(n: int) -> uuid.UUID:
    # UUIDv7-shaped and time-ordered by n (newer tasks have larger ids), random-looking tail.
    tail = hashlib.sha256(str(n).encode()).hexdigest()
    return uuid.UUID(f"019bc1a2-{n:04x}-7{tail[:3]}-8{tail[3:6]}-{tail[6:18]}")


MARKUP = "[bold red]x[/] [link=https://example.com]click[/link] \x1b[31mred\x1b[0m"


def _task(
    n,
    name,
    queue,
    state,
    attempts=1,
    max_attempts=5,
    step=None,
    updated=30,
    worker=None,
    wake_event=None,
) -> TaskRow:
    return TaskRow(
        queue=queue,
        task_id=tid(n),
        task_name=name,
        state=state,
        attempts=attempts,
        max_attempts=max_attempts,
        enqueue_at=ago(updated + 60),
        step=step,
        updated_at=ago(updated),
        worker=worker,
        wake_event=wake_event,
        available_at=None,
    )


TASKS: tuple[TaskRow, ...] = tuple(
    sorted(
        [
            _task(
                40,
                "send-welcome-email",
                "emails",
                "running",
                step="render#2",
                updated=2,
                worker="host-a:4242:1",
            ),
            _task(
                39,
                "agent",
                "agents",
                "sleeping",
                step="iteration#2",
                updated=12,
                wake_event=f"agent:{tid(39)}:answer#1",
            ),
            _task(38, "resize-image", "default", "pending", updated=3),
            _task(
                37,
                "resize-image",
                "default",
                "completed",
                step="upload",
                updated=45,
                worker="host-a:4242:0",
            ),
            _task(
                36,
                "charge-card",
                "default",
                "failed",
                attempts=3,
                max_attempts=3,
                step="authorize",
                updated=95,
                worker="host-b:77:2",
            ),
            _task(35, "nightly-report", "default", "sleeping", step="wait-for-data", updated=400),
            _task(34, "sync-crm", "default", "cancelled", attempts=2, updated=1800),
            _task(
                33,
                MARKUP,
                "default",
                "completed",
                step="[b]step[/b]",
                updated=3700,
                worker="host-a:4242:0",
            ),
            _task(
                32,
                "agent",
                "agents",
                "completed",
                attempts=1,
                max_attempts=None,
                step="iteration#12",
                updated=7200,
            ),
        ],
        key=lambda r: r.task_id,
        reverse=True,
    )
)


def _summary(
    queue: str, counts: dict[str, int], claimable: int, lag: float | None, estimated=False
) -> QueueSummary:
    return QueueSummary(
        queue=queue,
        created_at=ago(86400),
        counts=tuple(
            (
                s,
                Count(
                    counts.get(s, 0),
                    estimated=estimated and s in ("completed", "failed", "cancelled"),
                ),
            )
            for s in STATES
        ),
        claimable=Count(claimable),
        oldest_claimable_at=None if lag is None else ago(lag),
    )


QUEUES = (
    _summary("agents", {"sleeping": 1, "completed": 12}, 0, None),
    _summary(
        "default",
        {"pending": 1, "sleeping": 1, "completed": 1_204_311, "failed": 1_630, "cancelled": 42},
        1,
        3,
        estimated=True,
    ),
    _summary("emails", {"running": 1, "completed": 380}, 0, None),
)

DETAIL = TaskDetail(
    queue="default",
    task_id=tid(36),
    task_name="charge-card",
    state="failed",
    attempts=3,
    max_attempts=3,
    params={"order": 42, "amount": {"value": 1999, "currency": "EUR"}, "note": MARKUP},
    headers={"trace_id": "4bf92f3577b34da6"},
    retry_strategy={"kind": "exponential", "base_seconds": 2},
    cancellation=None,
    idempotency_key=None,
    enqueue_at=ago(400),
    first_started_at=ago(390),
    cancelled_at=None,
    result=None,
    last_run_id=tid(203),
    runs=tuple(
        RunInfo(
            run_id=tid(200 + i),
            attempt=i,
            state="failed",
            claimed_by="host-b:77:2",
            claim_expires_at=None,
            available_at=ago(390 - 100 * (i - 1)),
            wake_event=None,
            created_at=ago(390 - 100 * (i - 1)),
            started_at=ago(389 - 100 * (i - 1)),
            completed_at=None,
            failed_at=ago(385 - 100 * (i - 1)),
            result=None,
            failure_reason={
                "name": "CardDeclined",
                "message": f"issuer said no ({MARKUP})",
                "traceback": 'Traceback (most recent call last):\n  File "tasks.py", line 12, in charge\n    raise CardDeclined(reply)\nCardDeclined: issuer said no',
            },
        )
        for i in (1, 2, 3)
    ),
    checkpoints=(
        CheckpointInfo("load-order", {"order": 42, "lines": 3}, "committed", tid(201), 1, ago(388)),
        CheckpointInfo(
            "authorize", {"auth": "pending", "markup": MARKUP}, "committed", tid(202), 2, ago(287)
        ),
        CheckpointInfo("authorize#2", None, "committed", tid(203), 3, ago(186)),
    ),
    checkpoints_truncated=False,
    waits=(),
)


def _turn(text: str, tool: str, tool_input: dict, tool_id: str, tokens: tuple[int, int]) -> dict:
    return {
        "role": "assistant",
        "content": [
            {"type": "text", "text": text},
            {"type": "tool_use", "id": tool_id, "name": tool, "input": tool_input},
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": tokens[0], "output_tokens": tokens[1]},
        "model": "claude-haiku-4-5",
    }


AGENT_RUN = RunInfo(
    run_id=tid(139),
    attempt=1,
    state="sleeping",
    claimed_by=None,
    claim_expires_at=None,
    available_at=None,
    wake_event=f"agent:{tid(39)}:answer#1",
    created_at=ago(40),
    started_at=ago(39),
    completed_at=None,
    failed_at=None,
    result=None,
    failure_reason=None,
)

AGENT_DETAIL = TaskDetail(
    queue="agents",
    task_id=tid(39),
    task_name="agent",
    state="sleeping",
    attempts=1,
    max_attempts=10,
    params={
        "prompt": "Plan a day trip for tomorrow: check the time, ask me which city, then look at its weather.",
        "model": "claude-haiku-4-5",
    },
    headers=None,
    retry_strategy={"kind": "exponential", "base_seconds": 5, "factor": 2, "max_seconds": 300},
    cancellation=None,
    idempotency_key=None,
    enqueue_at=ago(40),
    first_started_at=ago(39),
    cancelled_at=None,
    result=None,
    last_run_id=tid(139),
    runs=(AGENT_RUN,),
    checkpoints=(
        CheckpointInfo(
            "iteration",
            _turn(
                "First I will check today's date and time.",
                "current_time",
                {"timezone": "Europe/Paris"},
                "toolu_01",
                (512, 61),
            ),
            "committed",
            tid(139),
            1,
            ago(30),
        ),
        CheckpointInfo(
            "tool:current_time",
            {
                "tool_use_id": "toolu_01",
                "content": "2026-01-15 13:00:00 CET (Thursday)",
                "is_error": False,
            },
            "committed",
            tid(139),
            1,
            ago(29),
        ),
        CheckpointInfo(
            "iteration#2",
            _turn(
                f"It is Thursday afternoon. Model output stays literal: {MARKUP}",
                "ask_human",
                {"question": "Which city should I plan the day trip for?"},
                "toolu_02",
                (640, 48),
            ),
            "committed",
            tid(139),
            1,
            ago(12),
        ),
    ),
    checkpoints_truncated=False,
    waits=(
        WaitInfo(
            "agents",
            tid(39),
            "agent",
            tid(139),
            "ask_human",
            f"agent:{tid(39)}:answer#1",
            ago(12),
            None,
        ),
    ),
)

WAITS = (
    WaitInfo(
        "agents",
        tid(39),
        "agent",
        tid(139),
        "ask_human",
        f"agent:{tid(39)}:answer#1",
        ago(12),
        None,
    ),
    WaitInfo(
        "default",
        tid(35),
        "nightly-report",
        tid(135),
        "wait-for-data",
        "data-ready",
        ago(400),
        ago(400) + timedelta(hours=1),
    ),
)

EVENTS = (
    EventInfo("default", "order-41.paid", {"amount": 1999, "note": MARKUP}, ago(30)),
    EventInfo("emails", "newsletter.sent", None, ago(900)),
    EventInfo("default", "data-ready:2026-01-14", {"rows": 48211}, ago(86000)),
)

SEEN = (
    WorkerSeen("host-a:4242:1", ("emails",), 1, ago(2), NOW + timedelta(seconds=118)),
    WorkerSeen("host-b:77:0", ("default", "agents"), 3, ago(40), NOW + timedelta(seconds=80)),
)


@dataclass(frozen=True)
class FakeStatus:
    index: int
    worker_id: str
    state: str
    task_id: uuid.UUID | None = None
    task_name: str | None = None
    queue: str | None = None
    step: str | None = None
    since: datetime | None = None


class FakeWorkers:
    def __init__(self, count: int = 3):
        self._statuses = [
            FakeStatus(0, "host-a:4242:0", "idle", since=ago(5)),
            FakeStatus(
                1,
                "host-a:4242:1",
                "running",
                tid(40),
                "send-welcome-email",
                "emails",
                "render#2",
                ago(2),
            ),
            FakeStatus(2, "host-a:4242:2", "idle", since=ago(61)),
        ][:count]
        self.paused = False

    def start(self) -> None:
        pass

    def stop(self, timeout: float | None = None) -> None:
        pass

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False

    def resize(self, n: int) -> None:
        pass

    def statuses(self):
        return list(self._statuses)


class StaticSource:
    """A DataSource with fixed data. ``down`` simulates an unreachable database."""

    label = "db.example.com:5432/orders"

    def __init__(self, *, down: bool = False, broken: bool = False):
        self.down = down
        self.broken = broken
        self.calls: list[tuple[str, Any]] = []

    def _check(self) -> None:
        if self.down:
            raise DatabaseUnavailable(
                "Cannot connect to PostgreSQL at db.example.com:5432/orders: connection refused."
            )

    def tasks(self, flt: TaskFilter, limit: int, after, count: bool) -> TasksSnapshot:
        self._check()
        if self.broken:
            import psycopg

            raise psycopg.errors.UndefinedTable('relation "absurd.t_reports" does not exist')
        rows = [
            r
            for r in TASKS
            if (flt.queue is None or r.queue == flt.queue)
            and (flt.state is None or r.state == flt.state)
            and (flt.name is None or r.task_name.startswith(flt.name))
            and (
                flt.search is None
                or r.task_name.startswith(flt.search)
                or str(r.task_id).startswith(flt.search)
            )
        ]
        return TasksSnapshot(QUEUES, TaskPage(tuple(rows[:limit]), Count(len(rows)), None), count)

    def events(self) -> EventsSnapshot:
        self._check()
        return EventsSnapshot(WAITS, EVENTS)

    def workers_seen(self):
        self._check()
        return SEEN

    def task_detail(self, queue, task_id):
        self._check()
        if task_id == DETAIL.task_id:
            return DETAIL
        if task_id == AGENT_DETAIL.task_id:
            return AGENT_DETAIL
        row = next((r for r in TASKS if r.task_id == task_id), None)
        if row is None:
            return None
        return replace(
            DETAIL, task_id=row.task_id, task_name=row.task_name, state=row.state, queue=row.queue
        )

    def queue_names(self) -> list[str]:
        return [q.queue for q in QUEUES]

    def task_types(self) -> list[TaskType]:
        return [
            TaskType("agent", "agents"),
            TaskType("charge-card", "default"),
            TaskType("resize-image", "default"),
            TaskType("send-welcome-email", "emails"),
        ]

    def spawn(self, queue, name, params, max_attempts):
        self._check()
        self.calls.append(("spawn", (queue, name, params, max_attempts)))
        return ops.Spawned(queue, name, tid(99), tid(98), 1)

    def emit(self, queue, event_name, payload):
        self._check()
        self.calls.append(("emit", (queue, event_name, payload)))
        return ops.Emitted(queue, event_name, ops.EmitStatus.EMITTED, NOW)

    def retry(self, task, *, spawn_new, max_attempts):
        self._check()
        self.calls.append(("retry", (task.queue, task.task_id, spawn_new, max_attempts)))
        return ops.Retried(task, ops.RetryStatus.RETRIED, "pending", task.task_id, tid(98), 2)

    def cancel(self, task):
        self._check()
        self.calls.append(("cancel", (task.queue, task.task_id)))
        return ops.Cancelled(task, ops.CancelStatus.CANCELLED, "cancelled")

    def spawn_agent(self, queue, prompt, model, max_iterations):
        self._check()
        self.calls.append(("spawn_agent", (queue, prompt, model, max_iterations)))
        return ops.Spawned(queue, "agent", AGENT_DETAIL.task_id, tid(98), 1)

    def answer(self, queue, event_name, text):
        self._check()
        self.calls.append(("answer", (queue, event_name, text)))
        return ops.Answered(ops.Emitted(queue, event_name, ops.EmitStatus.EMITTED, NOW))

    def plan_bulk(self, operation, flt):
        self._check()
        states = ops.bulk_states(operation, flt.state)
        refs = tuple(
            TaskRef(r.queue, r.task_id, r.task_name, r.state)
            for r in self.tasks(flt, 100, None, False).page.rows
            if r.state in states
        )
        return BulkPlan(operation, flt, refs, False, ops.BULK_LIMIT)

    def run_bulk(self, plan, progress=None):
        return BulkResult(plan, 0, 0, ())

    def listen(self, channels: Sequence[str]):
        raise DatabaseUnavailable("no notifications in snapshot tests")

    def close(self) -> None:
        pass
