"""The read models: frozen snapshots of what is in the engine's tables.

No I/O and no text for screens here (``absurd_tui.text`` renders these). The task
states are the contract's; which of them an operation applies to is decided in
``absurd_tui.ops.policy``, on top of the live/terminal split defined here.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

STATES = ("pending", "running", "sleeping", "completed", "failed", "cancelled")
LIVE_STATES = ("pending", "running", "sleeping")
"""A task in one of these has one live run and can still make progress."""
TERMINAL_STATES = ("completed", "failed", "cancelled")
"""A task in one of these is finished (a failed one may be retried)."""


def is_live(state: str) -> bool:
    return state in LIVE_STATES


def is_terminal(state: str) -> bool:
    return state in TERMINAL_STATES


@dataclass(frozen=True)
class Count:
    """A row count that may be a lower bound ("10,000+") or an estimate ("~1.2M")."""

    value: int
    capped: bool = False
    """True when counting stopped at the cap: the real number is larger."""
    estimated: bool = False
    """True when the figure comes from planner statistics, not a count."""

    def __add__(self, other: Count) -> Count:
        return Count(
            self.value + other.value,
            capped=self.capped or other.capped,
            estimated=self.estimated or other.estimated,
        )


ZERO = Count(0)


@dataclass(frozen=True)
class QueueSummary:
    queue: str
    created_at: datetime | None
    counts: tuple[tuple[str, Count], ...]
    """(state, count) for each of STATES, in that order."""
    claimable: Count
    """Runs that a worker could claim right now (available_at <= now)."""
    oldest_claimable_at: datetime | None
    """available_at of the run waiting longest to be claimed: the queue's lag."""

    def count(self, state: str) -> Count:
        return dict(self.counts)[state]

    @property
    def total(self) -> Count:
        total = ZERO
        for _, count in self.counts:
            total = total + count
        return total


@dataclass(frozen=True)
class TaskFilter:
    queue: str | None = None
    """None means every queue."""
    state: str | None = None
    name: str | None = None
    """Task name prefix."""
    search: str | None = None
    """Id prefix (hex, dashes optional) or task name prefix."""


@dataclass(frozen=True)
class TaskRow:
    queue: str
    task_id: uuid.UUID
    task_name: str
    state: str
    attempts: int
    max_attempts: int | None
    enqueue_at: datetime
    step: str | None
    """Name of the most recently written checkpoint, e.g. ``iteration#3``."""
    updated_at: datetime
    """Latest of spawn, claim, completion, failure, cancellation and checkpoint times."""
    worker: str | None
    """claimed_by of the newest run (kept after it fails or expires)."""
    wake_event: str | None
    available_at: datetime | None
    """When the newest run becomes claimable; None while it waits for an event with no
    timeout (stored as 'infinity', which Python datetimes cannot hold)."""

    @property
    def key(self) -> str:
        return f"{self.queue}/{self.task_id}"


@dataclass(frozen=True)
class TaskPage:
    rows: tuple[TaskRow, ...]
    matches: Count
    """How many tasks match the filter (whole result, not this page)."""
    next_after: uuid.UUID | None
    """Pass as ``after`` to get the next (older) page; None when this is the last."""


@dataclass(frozen=True)
class RunInfo:
    run_id: uuid.UUID
    attempt: int
    state: str
    claimed_by: str | None
    claim_expires_at: datetime | None
    available_at: datetime | None
    wake_event: str | None
    created_at: datetime | None
    started_at: datetime | None
    completed_at: datetime | None
    failed_at: datetime | None
    result: Any
    failure_reason: Any

    @property
    def ended_at(self) -> datetime | None:
        return self.completed_at or self.failed_at


@dataclass(frozen=True)
class CheckpointInfo:
    name: str
    state: Any
    status: str
    owner_run_id: uuid.UUID | None
    owner_attempt: int | None
    updated_at: datetime


@dataclass(frozen=True)
class WaitInfo:
    queue: str
    task_id: uuid.UUID
    task_name: str | None
    run_id: uuid.UUID
    step_name: str
    event_name: str
    created_at: datetime
    timeout_at: datetime | None


@dataclass(frozen=True)
class TaskDetail:
    queue: str
    task_id: uuid.UUID
    task_name: str
    state: str
    attempts: int
    max_attempts: int | None
    params: Any
    headers: Any
    retry_strategy: Any
    cancellation: Any
    idempotency_key: str | None
    enqueue_at: datetime
    first_started_at: datetime | None
    cancelled_at: datetime | None
    result: Any
    """completed_payload (only meaningful when completed)."""
    last_run_id: uuid.UUID | None
    runs: tuple[RunInfo, ...]
    checkpoints: tuple[CheckpointInfo, ...]
    checkpoints_truncated: bool
    waits: tuple[WaitInfo, ...]
    read_at: datetime | None = None
    """The database's clock (absurd.current_time()) when this snapshot was read."""

    @property
    def last_run(self) -> RunInfo | None:
        for run in self.runs:
            if run.run_id == self.last_run_id:
                return run
        return self.runs[-1] if self.runs else None

    @property
    def failure(self) -> Any:
        """The failure reason of the newest failed run, if any."""
        for run in reversed(self.runs):
            if run.failure_reason is not None:
                return run.failure_reason
        return None

    @property
    def ended_at(self) -> datetime | None:
        run = self.last_run
        if self.state == "cancelled":
            return self.cancelled_at
        if run is not None and self.state in ("completed", "failed"):
            return run.ended_at
        return None


@dataclass(frozen=True)
class EventInfo:
    queue: str
    event_name: str
    payload: Any
    emitted_at: datetime


@dataclass(frozen=True)
class WorkerSeen:
    """A worker id that holds running runs in the database (any host, any process)."""

    worker: str
    queues: tuple[str, ...]
    running: int
    last_claim_at: datetime | None
    lease_expires_at: datetime | None
    """The earliest lease end among its runs; past it, the next claim reclaims them."""


@dataclass(frozen=True)
class TaskRef:
    queue: str
    task_id: uuid.UUID
    task_name: str
    state: str
