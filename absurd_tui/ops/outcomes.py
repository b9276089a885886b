"""What an operation did, as small typed results, each with the one sentence that says so.

Every interface reports an outcome with ``outcome.message``, so the CLI and the
console use the same words. ``ok`` says whether the operation did what was asked
(the CLI's exit code follows it); ``changed`` whether anything in the engine changed.
User data in messages goes through ``absurd_tui.text.quote`` (inert, single line).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Protocol

from ..db.models import TaskFilter, TaskRef
from ..text import clean, filter_label, quote
from .policy import BulkOperation, states_label


class Outcome(Protocol):
    """What every outcome offers an interface."""

    @property
    def ok(self) -> bool:
        """The operation did what was asked (an exit code of 0)."""
        ...

    @property
    def changed(self) -> bool:
        """Something in the engine changed."""
        ...

    @property
    def message(self) -> str:
        """The one sentence every interface reports it with."""
        ...


def _when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S %Z}".rstrip()


def _task(ref: TaskRef) -> str:
    return f"Task {ref.task_id} ({quote(ref.task_name)})"


@dataclass(frozen=True)
class QueueCreated:
    queue: str
    created: bool
    """False when the queue existed already (creating one is idempotent)."""

    ok = True

    @property
    def changed(self) -> bool:
        return self.created

    @property
    def message(self) -> str:
        return f"Queue {quote(self.queue)} {'created' if self.created else 'already exists'}."


@dataclass(frozen=True)
class QueueDropped:
    queue: str
    tasks: str
    """How many tasks it held, as counted before the drop ("12", "10,000+", "~1.2M")."""

    ok = True
    changed = True

    @property
    def message(self) -> str:
        return f"Queue {quote(self.queue)} dropped ({self.tasks} task(s))."


@dataclass(frozen=True)
class Spawned:
    queue: str
    task_name: str
    task_id: uuid.UUID
    run_id: uuid.UUID
    attempt: int
    created: bool = True
    """False when an idempotency key matched an existing task (whose ids these are)."""
    idempotency_key: str | None = None

    ok = True

    @property
    def changed(self) -> bool:
        return self.created

    @property
    def message(self) -> str:
        if not self.created:
            return (
                f"An existing task ({self.task_id}) has idempotency key "
                f"{quote(self.idempotency_key)}: nothing new was spawned."
            )
        return f"Spawned {quote(self.task_name)} on queue {quote(self.queue)}: {self.task_id}."


class EmitStatus(Enum):
    EMITTED = "emitted"
    ALREADY_EMITTED = "already emitted"
    """The event had been emitted before: the first emit wins, nothing changed."""


@dataclass(frozen=True)
class Emitted:
    queue: str
    event_name: str
    status: EmitStatus
    emitted_at: datetime | None
    """When the event that counts was emitted (this emit's, or the first one's)."""

    ok = True

    @property
    def changed(self) -> bool:
        return self.status is EmitStatus.EMITTED

    @property
    def message(self) -> str:
        if self.status is EmitStatus.ALREADY_EMITTED:
            when = f" at {_when(self.emitted_at)}" if self.emitted_at is not None else ""
            return (
                f"{quote(self.event_name)} was already emitted on queue {quote(self.queue)}"
                f"{when}; the first emit wins, so nothing changed."
            )
        return f"Emitted {quote(self.event_name)} on queue {quote(self.queue)}."


@dataclass(frozen=True)
class Answered:
    """An answer to an agent's question (an emit of its answer event)."""

    emit: Emitted

    ok = True

    @property
    def changed(self) -> bool:
        return self.emit.changed

    @property
    def message(self) -> str:
        if self.emit.status is EmitStatus.ALREADY_EMITTED:
            return "This question was already answered (the first answer wins); nothing changed."
        return "Answer sent: the agent carries on."


class RetryStatus(Enum):
    RETRIED = "retried"
    """Pending again as its next attempt."""
    SPAWNED_NEW = "spawned new"
    """A copy was spawned as a new task."""
    NOT_FAILED = "not failed"
    """The task is not failed (any more): nothing was retried."""


@dataclass(frozen=True)
class Retried:
    task: TaskRef
    status: RetryStatus
    state: str
    """The task's state that decided it (the new state when retried)."""
    new_task_id: uuid.UUID | None = None
    """The task that runs next: the same id in place, the copy's with spawn_new."""
    run_id: uuid.UUID | None = None
    attempt: int | None = None
    created: bool = False
    """A new task was created (spawn_new), as the engine's retry_task reports it."""

    @property
    def ok(self) -> bool:
        return self.status is not RetryStatus.NOT_FAILED

    @property
    def changed(self) -> bool:
        return self.ok

    @property
    def message(self) -> str:
        if self.status is RetryStatus.SPAWNED_NEW:
            return f"Spawned task {self.new_task_id} as a new copy of {self.task.task_id}."
        if self.status is RetryStatus.RETRIED:
            return f"Task {self.task.task_id} is pending again as attempt {self.attempt}."
        return f"{_task(self.task)} is {self.state}, not failed: only failed tasks can be retried."


class CancelStatus(Enum):
    CANCELLED = "cancelled"
    ALREADY_FINISHED = "already finished"
    """It had finished before the cancel was asked for: nothing to cancel."""
    FINISHED_FIRST = "finished first"
    """It finished (completed or failed) before the cancel took effect."""


@dataclass(frozen=True)
class Cancelled:
    task: TaskRef
    status: CancelStatus
    state: str
    """The task's state after the operation."""

    @property
    def ok(self) -> bool:
        return self.status is CancelStatus.CANCELLED

    @property
    def changed(self) -> bool:
        return self.ok

    @property
    def message(self) -> str:
        if self.status is CancelStatus.ALREADY_FINISHED:
            return f"{_task(self.task)} is already {self.state}: nothing to cancel."
        if self.status is CancelStatus.FINISHED_FIRST:
            return f"{_task(self.task)} became {self.state} before it could be cancelled."
        return f"{_task(self.task)} cancelled."


@dataclass(frozen=True)
class BulkPlan:
    """The tasks a bulk operation would touch, listed before anyone confirms."""

    operation: BulkOperation
    flt: TaskFilter
    tasks: tuple[TaskRef, ...]
    truncated: bool
    """More tasks matched than a plan holds; running it again takes the rest."""
    limit: int

    @property
    def verb(self) -> str:
        return "Retry" if self.operation == "retry" else "Cancel"

    @property
    def noun(self) -> str:
        return "task" if len(self.tasks) == 1 else "tasks"

    @property
    def empty_message(self) -> str:
        return f"No {states_label(self.operation)} tasks match {quote_filter(self.flt)}."

    @property
    def title(self) -> str:
        return f"{self.verb} {len(self.tasks):,} {self.noun}"

    @property
    def question(self) -> str:
        more = f" (the first {self.limit:,}; run it again for the rest)" if self.truncated else ""
        return (
            f"{self.verb} {len(self.tasks):,} {states_label(self.operation)} {self.noun} "
            f"matching {quote_filter(self.flt)}{more}?"
        )

    @property
    def started_message(self) -> str:
        return f"{self.verb} of {len(self.tasks):,} {self.noun} started."

    def progress_message(self, processed: int) -> str:
        return f"{self.verb}: {processed:,} of {len(self.tasks):,} {self.noun} so far."


@dataclass(frozen=True)
class BulkResult:
    plan: BulkPlan
    done: int
    skipped: int
    errors: tuple[str, ...]
    """The first few skipped tasks with why (each names its short id)."""
    stopped: str | None = None
    """Why it stopped before the end (the connection was lost), if it did."""

    @property
    def ok(self) -> bool:
        return self.stopped is None

    @property
    def changed(self) -> bool:
        return self.done > 0

    @property
    def message(self) -> str:
        count = len(self.plan.tasks)
        text = f"{self.plan.verb}: {self.done:,} of {count:,} {self.plan.noun} done"
        if self.skipped:
            text += f", {self.skipped:,} skipped (changed meanwhile)"
        if self.stopped:
            text += f". Stopped early, the rest is unchanged: {self.stopped}"
        return text


def quote_filter(flt: TaskFilter) -> str:
    """A filter in a sentence (its user-typed parts made inert)."""
    return clean(filter_label(flt), single_line=True)


__all__ = [
    "Answered",
    "BulkPlan",
    "BulkResult",
    "CancelStatus",
    "Cancelled",
    "EmitStatus",
    "Emitted",
    "Outcome",
    "QueueCreated",
    "QueueDropped",
    "Retried",
    "RetryStatus",
    "Spawned",
]
