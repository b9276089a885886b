"""Task results: snapshots of a task's outcome, fetched or awaited by polling."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import psycopg

from .errors import TimeoutError

TaskResultState = Literal["pending", "running", "sleeping", "completed", "failed", "cancelled"]
TERMINAL_STATES = frozenset({"completed", "failed", "cancelled"})


@dataclass(frozen=True)
class TaskResultSnapshot:
    """A task's state, with its result once completed or its failure once failed."""

    state: TaskResultState
    result: Any = None
    failure: Any = None

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    def to_json(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"state": self.state}
        if self.state == "completed":
            payload["result"] = self.result
        elif self.state == "failed":
            payload["failure"] = self.failure
        return payload

    @classmethod
    def from_json(cls, value: Any) -> TaskResultSnapshot:
        if not isinstance(value, dict) or "state" not in value:
            raise TypeError(f"Not a task result snapshot: {value!r}")
        return cls(state=value["state"], result=value.get("result"), failure=value.get("failure"))


def fetch_result_snapshot(
    conn: psycopg.Connection, queue_name: str, task_id: uuid.UUID
) -> TaskResultSnapshot | None:
    row = conn.execute(
        "SELECT state, result, failure_reason FROM absurd.get_task_result(%s, %s)",
        (queue_name, task_id),
    ).fetchone()
    if row is None:
        return None
    state, result, failure = row
    if state == "completed":
        return TaskResultSnapshot(state=state, result=result)
    if state == "failed":
        return TaskResultSnapshot(state=state, failure=failure)
    return TaskResultSnapshot(state=state)


def await_with_backoff(
    fetch: Callable[[], TaskResultSnapshot | None],
    task_id: str,
    timeout: float | None,
    before_sleep: Callable[[], None] | None = None,
) -> TaskResultSnapshot:
    """Poll ``fetch`` until the task is terminal: 50 ms, doubling to 1 s between polls
    (the official SDK's schedule). Raises ``TimeoutError`` after ``timeout`` seconds."""
    deadline = None if timeout is None else time.monotonic() + max(timeout, 0)
    delay = 0.05
    while True:
        snapshot = fetch()
        if snapshot is None:
            raise LookupError(f'Task "{task_id}" not found')
        if snapshot.terminal:
            return snapshot
        pause = delay
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f'Timed out waiting for task "{task_id}"')
            pause = min(pause, remaining)
        if before_sleep is not None:
            before_sleep()
        time.sleep(pause)
        delay = min(delay * 2, 1.0)
