"""Shared helpers of the agent's end-to-end tests: workers, waiting, reading a task."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from support import wait_until

from absurd_tui.agent.task import AGENT_QUEUE, register_agent
from absurd_tui.runtime import WorkerPool
from absurd_tui.sdk.registry import TaskRegistry

FAST_RETRY = {"kind": "exponential", "base_seconds": 0.2, "factor": 2, "max_seconds": 2}
TEST_KEY = "sk-ant-test-key-0000"


def agent_registry(queue: str = AGENT_QUEUE) -> TaskRegistry:
    registry = TaskRegistry()
    register_agent(registry, queue=queue)
    return registry


@contextmanager
def running_workers(
    dsn: str, *, claim_timeout: int = 30, queue: str = AGENT_QUEUE
) -> Iterator[WorkerPool]:
    pool = WorkerPool(
        dsn,
        registry=agent_registry(queue),
        queues=(queue,),
        concurrency=1,
        claim_timeout=claim_timeout,
        poll_interval=0.1,
    )
    pool.start()
    try:
        yield pool
    finally:
        pool.stop(timeout=5)


@dataclass(frozen=True)
class AgentTask:
    """What the tests check of an agent task, read straight from the queue's tables."""

    state: str
    result: Any
    max_attempts: int | None
    runs: list[dict[str, Any]]
    checkpoints: dict[str, Any]
    waits: list[dict[str, Any]]

    @property
    def failure(self) -> Any:
        failed = [run["failure_reason"] for run in self.runs if run["failure_reason"] is not None]
        return failed[-1] if failed else None


def _rows(conn: psycopg.Connection, table: str, query: str, task_id: str) -> list[dict[str, Any]]:
    statement = sql.SQL(query).format(sql.Identifier(f"{table}_{AGENT_QUEUE}"))
    return conn.cursor(row_factory=dict_row).execute(statement, (task_id,)).fetchall()


def detail(conn: psycopg.Connection, task_id: str) -> AgentTask:
    [task] = _rows(
        conn,
        "t",
        "SELECT state, completed_payload, max_attempts FROM absurd.{} WHERE task_id = %s",
        task_id,
    )
    runs = _rows(
        conn,
        "r",
        "SELECT attempt, state, failure_reason FROM absurd.{} WHERE task_id = %s ORDER BY attempt",
        task_id,
    )
    checkpoints = _rows(
        conn,
        "c",
        "SELECT checkpoint_name, state FROM absurd.{} WHERE task_id = %s AND status = 'committed'",
        task_id,
    )
    waits = _rows(
        conn, "w", "SELECT step_name, event_name FROM absurd.{} WHERE task_id = %s", task_id
    )
    return AgentTask(
        state=task["state"],
        result=task["completed_payload"],
        max_attempts=task["max_attempts"],
        runs=runs,
        checkpoints={c["checkpoint_name"]: c["state"] for c in checkpoints},
        waits=waits,
    )


def wait_for_state(
    conn: psycopg.Connection, task_id: str, *states: str, timeout: float = 30.0
) -> AgentTask:
    return wait_until(
        lambda: (d := detail(conn, task_id)).state in states and d,
        timeout,
        f"task {task_id} to be {' or '.join(states)}",
    )
