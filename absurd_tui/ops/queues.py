"""Resolving a queue name: one rule, one message for a queue that does not exist.

Operations never create a queue by accident: an unknown queue is refused before
anything is written (``UnknownQueue``), with the command that creates it. The one
exception is the agent's own queue, which ``resolve_agent_queue`` creates on demand
(the agent is built in, so its queue is ours to make).
"""

from __future__ import annotations

import psycopg

from ..agent import AGENT_QUEUE, AGENT_TASK
from ..config import APP_NAME
from ..db.reads import queue_names
from ..sdk import Absurd
from ..sdk.registry import TaskRegistry
from ..text import quote, shell_word
from .errors import UnknownQueue, translated


def unknown_queue(queue: str, known: list[str]) -> UnknownQueue:
    listed = ", ".join(quote(name) for name in known) if known else "none yet"
    return UnknownQueue(
        f"Unknown queue {quote(queue)} (queues: {listed}). "
        f"Create it with: {APP_NAME} queue create {shell_word(queue)}",
        queue,
        known,
    )


def resolve_queue(conn: psycopg.Connection, queue: str) -> str:
    """``queue`` if it exists; else raise UnknownQueue (nothing is written)."""
    with translated(conn):
        known = queue_names(conn)
    if queue in known:
        return queue
    raise unknown_queue(queue, known)


def agent_queue(registry: TaskRegistry | None = None) -> str:
    """The queue agents run on: where ``registry`` has the agent, else ``agents``."""
    registration = registry.get(AGENT_TASK) if registry is not None else None
    return registration.queue if registration is not None else AGENT_QUEUE


def is_agent_queue(queue: str, registry: TaskRegistry | None = None) -> bool:
    return queue in (AGENT_QUEUE, agent_queue(registry))


def resolve_agent_queue(
    conn: psycopg.Connection, queue: str | None = None, registry: TaskRegistry | None = None
) -> str:
    """The queue to spawn an agent on: ``queue`` (default: the agent's own queue).

    The agent's own queue (``agents``, or where ``registry`` registers the agent) is
    created if missing; any other queue must exist already.
    """
    chosen = queue if queue is not None else agent_queue(registry)
    if not is_agent_queue(chosen, registry):
        return resolve_queue(conn, chosen)
    with translated(conn):
        if chosen not in queue_names(conn):
            Absurd(conn, queue_name=chosen, registry=TaskRegistry()).create_queue(chosen)
    return chosen


__all__ = ["agent_queue", "is_agent_queue", "resolve_agent_queue", "resolve_queue", "unknown_queue"]
