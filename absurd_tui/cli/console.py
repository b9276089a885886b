"""The console (no command given): its options, and problems reported before it
takes over the terminal."""

from __future__ import annotations

import argparse

from .inputs import at_least, non_negative_float
from .session import Session, usage_error
from .worker import register_builtin_tasks


def configure(parser: argparse.ArgumentParser) -> None:
    """The console's options, on the top-level parser (before any command name)."""
    console = parser.add_argument_group("console options (when no command is given)")
    console.add_argument(
        "--workers",
        dest="tui_workers",
        type=at_least(0),
        metavar="N",
        help="embedded worker threads (default: 2)",
    )
    console.add_argument(
        "--queue",
        dest="tui_queues",
        action="append",
        metavar="Q",
        help="queue the workers serve (repeatable)",
    )
    console.add_argument(
        "--tasks",
        dest="tui_tasks",
        action="append",
        metavar="MODULE",
        help="module (or .py file) that registers tasks (repeatable)",
    )
    console.add_argument(
        "--no-workers", action="store_true", help="watch and steer only; run no workers"
    )
    console.add_argument(
        "--refresh",
        type=non_negative_float,
        metavar="S",
        help="seconds between refreshes (default: 1)",
    )


def options_given(args: argparse.Namespace) -> list[str]:
    """The console options present, which a command name after them would ignore."""
    given = [
        ("--workers", args.tui_workers is not None),
        ("--queue", bool(args.tui_queues)),
        ("--tasks", bool(args.tui_tasks)),
        ("--no-workers", args.no_workers),
        ("--refresh", args.refresh is not None),
    ]
    return [name for name, present in given if present]


def run(args: argparse.Namespace, session: Session) -> int:
    from ..db import DatabaseUnavailable
    from ..sdk.errors import TaskModuleError
    from ..sdk.registry import load_task_modules
    from ..ui import run_tui

    # Problems a user can fix are reported here, with the CLI's exit codes, before the
    # console takes over the terminal; run_tui then finds both already done.
    register_builtin_tasks()
    task_modules = tuple(args.tui_tasks or ())
    try:
        load_task_modules(task_modules)
    except TaskModuleError as exc:
        raise usage_error(str(exc)) from exc
    try:
        session.database()
    except DatabaseUnavailable:
        if session.settings.embedded:
            raise
        # A server that is down: the console opens anyway and says "disconnected,
        # retrying" in its own screen until the server answers.
    return run_tui(
        session.settings,
        workers=args.tui_workers if args.tui_workers is not None else 2,
        queues=args.tui_queues or None,
        task_modules=task_modules,
        no_workers=args.no_workers,
        refresh=args.refresh if args.refresh is not None else 1.0,
    )
