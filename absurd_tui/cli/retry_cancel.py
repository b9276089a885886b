"""``retry`` and ``cancel``: steering a task that exists."""

from __future__ import annotations

import argparse

from ..db import reads
from .inputs import positive_int
from .options import add_json_option, add_task_id_argument
from .output import print_json, quote
from .session import EXIT_OK, Session, operation_failed
from .spawn_emit import with_queue


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
    ref = session.find_task(args.task_id, args.queue)
    if ref.state != "failed":
        raise operation_failed(
            f"Task {ref.task_id} ({quote(ref.task_name)}) is {ref.state}, not failed: "
            "only failed tasks can be retried."
        )
    client = session.client(ref.queue)
    result = client.retry_task(
        str(ref.task_id),
        max_attempts=args.max_attempts,
        spawn_new=args.spawn_new,
        queue_name=ref.queue,
    )
    data = with_queue(result, ref.queue)
    if args.json:
        print_json(data)
    elif args.spawn_new:
        print(f"Spawned task {data['task_id']} as a new copy of {ref.task_id}.")
    else:
        print(f"Task {ref.task_id} is pending again as attempt {data['attempt']}.")
    return EXIT_OK


def configure_cancel(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Cancel a task that has not finished. A running task stops at its next step, "
        "sleep or event wait."
    )
    add_task_id_argument(parser)


def run_cancel(args: argparse.Namespace, session: Session) -> int:
    ref = session.find_task(args.task_id, args.queue)
    if ref.state in reads.TERMINAL_STATES:
        raise operation_failed(
            f"Task {ref.task_id} ({quote(ref.task_name)}) is already {ref.state}: "
            "nothing to cancel."
        )
    client = session.client(ref.queue)
    client.cancel_task(str(ref.task_id), queue_name=ref.queue)
    # Cancelling a task that finished meanwhile is a no-op in the engine: say so.
    after = client.fetch_task_result(str(ref.task_id), queue_name=ref.queue)
    if after is not None and after.state != "cancelled":
        raise operation_failed(
            f"Task {ref.task_id} ({quote(ref.task_name)}) became {after.state} before it "
            "could be cancelled."
        )
    print(f"Task {ref.task_id} ({quote(ref.task_name)}) cancelled.")
    return EXIT_OK
