"""Task registrations: which handler runs a task name, on which queue, with which defaults.

Task modules register into ``default_registry`` with the module-level decorator::

    from absurd_tui import register_task

    @register_task("send-email", queue="mail", default_max_attempts=3)
    def send_email(params, ctx): ...

and the TUI, the CLI and worker pools load such modules with ``load_task_modules``
(``--tasks``). A client or pool may also be given a registry of its own.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
import threading
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import Any

from ..config import DEFAULT_QUEUE
from .errors import InvalidInput, TaskModuleError
from .validation import (
    validate_cancellation,
    validate_max_attempts,
    validate_queue_name,
    validate_text,
)

TaskHandler = Callable[[Any, Any], Any]


@dataclass(frozen=True)
class TaskRegistration:
    name: str
    queue: str
    handler: TaskHandler
    default_max_attempts: int | None = None
    default_cancellation: Mapping[str, Any] | None = None


class TaskRegistry:
    """A thread-safe map from task name to its registration."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tasks: dict[str, TaskRegistration] = {}

    def register(
        self,
        name: str,
        handler: TaskHandler,
        *,
        queue: str | None = None,
        default_max_attempts: int | None = None,
        default_cancellation: Mapping[str, Any] | None = None,
    ) -> TaskRegistration:
        """Record ``handler`` for ``name``; registering a name again replaces it, so a
        reloaded task module simply takes over (as in the official SDK)."""
        if not isinstance(name, str) or not name.strip():
            raise InvalidInput("A task name must be a non-empty string", field="task_name")
        validate_text(name, "the task name")
        if not callable(handler):
            raise TypeError(f'The handler for task "{name}" is not callable')
        if inspect.iscoroutinefunction(handler):
            raise TypeError(
                f'The handler for task "{name}" is async; absurd-tui workers are threads and '
                "run plain functions (def handler(params, ctx))"
            )
        if default_max_attempts is not None:
            validate_max_attempts(default_max_attempts, f'default_max_attempts of task "{name}"')
        if default_cancellation is not None:
            default_cancellation = validate_cancellation(
                default_cancellation, f'default_cancellation of task "{name}"'
            )
        registration = TaskRegistration(
            name=name,
            queue=validate_queue_name(queue if queue is not None else DEFAULT_QUEUE),
            handler=handler,
            default_max_attempts=default_max_attempts,
            default_cancellation=(
                MappingProxyType(dict(default_cancellation)) if default_cancellation else None
            ),
        )
        with self._lock:
            self._tasks[name] = registration
        return registration

    def register_task(
        self,
        name: str,
        queue: str | None = None,
        default_max_attempts: int | None = None,
        default_cancellation: Mapping[str, Any] | None = None,
    ) -> Callable[[TaskHandler], TaskHandler]:
        """Decorator form of ``register``; returns the handler unchanged."""

        def decorator(handler: TaskHandler) -> TaskHandler:
            self.register(
                name,
                handler,
                queue=queue,
                default_max_attempts=default_max_attempts,
                default_cancellation=default_cancellation,
            )
            return handler

        return decorator

    def get(self, name: str) -> TaskRegistration | None:
        with self._lock:
            return self._tasks.get(name)

    def unregister(self, name: str) -> None:
        with self._lock:
            self._tasks.pop(name, None)

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._tasks)

    def registrations(self) -> list[TaskRegistration]:
        with self._lock:
            return [self._tasks[name] for name in sorted(self._tasks)]

    def queues(self) -> list[str]:
        """The queues that registered tasks run on, sorted."""
        with self._lock:
            return sorted({r.queue for r in self._tasks.values()})

    def __contains__(self, name: object) -> bool:
        with self._lock:
            return name in self._tasks

    def __iter__(self) -> Iterator[TaskRegistration]:
        return iter(self.registrations())

    def __len__(self) -> int:
        with self._lock:
            return len(self._tasks)

    def __repr__(self) -> str:
        return f"TaskRegistry({self.names()!r})"


default_registry = TaskRegistry()


def register_task(
    name: str,
    queue: str | None = None,
    default_max_attempts: int | None = None,
    default_cancellation: Mapping[str, Any] | None = None,
) -> Callable[[TaskHandler], TaskHandler]:
    """Register ``def handler(params, ctx)`` as task ``name`` in the default registry."""
    return default_registry.register_task(
        name,
        queue=queue,
        default_max_attempts=default_max_attempts,
        default_cancellation=default_cancellation,
    )


_load_lock = threading.Lock()


def load_task_modules(specs: list[str] | tuple[str, ...]) -> list[ModuleType]:
    """Import task modules given as dotted names (``myapp.tasks``) or ``.py`` paths.

    Importing them runs their ``@register_task`` decorators. A module already imported
    is not imported again. Errors raise ``TaskModuleError`` saying which spec failed and
    why; the original exception is chained.
    """
    modules: list[ModuleType] = []
    with _load_lock:
        for spec in specs:
            modules.append(_load_one(spec))
    return modules


def _looks_like_path(spec: str) -> bool:
    return spec.endswith(".py") or os.sep in spec or (os.altsep is not None and os.altsep in spec)


def _load_one(spec: str) -> ModuleType:
    spec = spec.strip()
    if not spec:
        raise TaskModuleError("An empty task module name was given")
    if _looks_like_path(spec):
        return _load_file(Path(spec))
    # A console script does not put the working directory on sys.path the way
    # `python -m` does; task modules usually live there.
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(spec)
    except ModuleNotFoundError as exc:
        if exc.name and (spec == exc.name or spec.startswith(exc.name + ".")):
            raise TaskModuleError(
                f'Cannot find the task module "{spec}" (looked in the current directory '
                "and on the Python path). Give a dotted module name or a path to a .py file."
            ) from exc
        raise TaskModuleError(f'Importing the task module "{spec}" failed: {exc}') from exc
    except Exception as exc:
        raise TaskModuleError(
            f'Importing the task module "{spec}" failed: {exc.__class__.__name__}: {exc}'
        ) from exc


def _load_file(path: Path) -> ModuleType:
    path = path.expanduser()
    if not path.is_file():
        raise TaskModuleError(f'The task file "{path}" does not exist (or is not a file)')
    resolved = path.resolve()
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if file and Path(file).resolve() == resolved:
            return module
    # A unique, stable module name so two files called tasks.py do not collide.
    name = f"absurd_tasks_{resolved.stem}_{zlib.crc32(str(resolved).encode()):08x}"
    module_spec = importlib.util.spec_from_file_location(name, resolved)
    if module_spec is None or module_spec.loader is None:
        raise TaskModuleError(f'The task file "{path}" cannot be imported as Python')
    module = importlib.util.module_from_spec(module_spec)
    # Lets the file import modules that sit next to it.
    parent = str(resolved.parent)
    if parent not in sys.path:
        sys.path.insert(0, parent)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise TaskModuleError(
            f'Importing the task file "{path}" failed: {exc.__class__.__name__}: {exc}'
        ) from exc
    return module
