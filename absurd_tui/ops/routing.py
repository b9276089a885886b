"""Whether a spawn is routed to something that can run it: one message for every interface.

A task name that nothing in this process registered is not an error (a worker elsewhere
may know it), but it is the usual cause of tasks that wait and never run: the CLI warns
and the console's spawn dialog asks first, in the same words.
"""

from __future__ import annotations

from ..sdk.registry import TaskRegistry, default_registry


def is_known_task(task_name: str, registry: TaskRegistry | None = None) -> bool:
    return (registry if registry is not None else default_registry).get(task_name) is not None


def unknown_task_message(task_name: str, queue: str, *, where: str = "this process") -> str:
    return (
        f"No task {task_name!r} is registered in {where}: it will wait on queue {queue!r} "
        "until a worker that registers it claims it."
    )
