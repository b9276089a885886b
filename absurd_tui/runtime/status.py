"""What each worker thread is doing, as reported to ``on_status`` and ``statuses()``."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

WorkerState = Literal["idle", "running", "paused", "stopped", "disconnected"]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class WorkerStatus:
    index: int
    """The thread's number in its pool, from 0."""
    worker_id: str
    """The id it claims with (``claimed_by`` in the runs table)."""
    state: WorkerState
    task_id: str | None = None
    task_name: str | None = None
    queue: str | None = None
    step: str | None = None
    """The checkpoint name of the step, sleep or event wait the task began last."""
    since: datetime | None = None
    """When the thread entered this state (for ``running``: when it claimed the task)."""
    run_id: str | None = None
    attempt: int | None = None

    def with_changes(self, **changes: Any) -> WorkerStatus:
        # dataclasses.replace checks the field names at run time.
        return replace(self, **changes)

    def describe(self) -> str:
        if self.state == "running":
            step = f", step {self.step}" if self.step else ""
            return f"running {self.task_name} {self.task_id}{step}"
        if self.state == "disconnected" and self.task_id:
            return f"disconnected (holding {self.task_name} {self.task_id})"
        return self.state
