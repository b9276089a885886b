"""``retry`` and ``cancel``: steering a task that exists."""

from __future__ import annotations

import argparse

from .. import ops
from .inputs import positive_int
from .options import add_json_option, add_task_id_argument
from .output import print_json, report
from .session import EXIT_OK, Session


def configure_retry(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Retry a failed task: in place, as its next attempt (allowing one more attempt "
        "unless --max-attempts), or as a new task with --spawn-new."
    )
    add_task_id_argument(parser)
    parser.add_argument("--max-attempts", type=positive_int, metavar="N")
    parser.add_argument("--spawn-new", action="store_true", help="spawn a copy as a new task")
    add_json_option(parser, "print the result as JSON")


def run_retry(args: argparse.Namespace, session: Session) -> int:
    conn = session.connection()
    task = ops.resolve_task(conn, args.task_id, args.queue)
    result = ops.retry(conn, task, spawn_new=args.spawn_new, max_attempts=args.max_attempts)
    if args.json and result.ok:
        print_json(
            {
                "task_id": result.new_task_id,
                "run_id": result.run_id,
                "attempt": result.attempt,
                "created": result.created,
                "queue": task.queue,
            }
        )
        return EXIT_OK
    return report(result)


def configure_cancel(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Cancel a task that has not finished. A running task stops at its next step, "
        "sleep or event wait."
    )
    add_task_id_argument(parser)


def run_cancel(args: argparse.Namespace, session: Session) -> int:
    conn = session.connection()
    return report(ops.cancel(conn, ops.resolve_task(conn, args.task_id, args.queue)))
