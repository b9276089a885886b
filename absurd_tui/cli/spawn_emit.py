"""``spawn`` and ``emit``: new work and events."""

from __future__ import annotations

import argparse
from typing import Any

from .. import ops
from ..config import DEFAULT_QUEUE
from .inputs import param_pairs, positive_int, read_json, read_json_lines, read_json_object
from .options import add_json_option
from .output import note, print_json, report
from .session import EXIT_OK, Session, usage_error
from .worker import register_builtin_tasks


def configure_spawn(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Spawn a task and print its id. JSON options accept @FILE to read a file and "
        "@- to read standard input. --batch spawns one task per line of JSON params, "
        "all in one transaction, and prints one id per line."
    )
    parser.add_argument("task", metavar="TASK", help="task name")
    parser.add_argument(
        "--queue", "-q", help="queue (default: the task's registered queue, else 'default')"
    )
    parser.add_argument("--params", metavar="JSON", help="task parameters (JSON)")
    parser.add_argument(
        "-P",
        dest="pairs",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="one parameter: key=value (a string) or key:=JSON (e.g. n:=3); repeatable",
    )
    parser.add_argument(
        "--batch",
        metavar="FILE",
        help="spawn one task per line of FILE ('-' for stdin), each line the JSON params",
    )
    parser.add_argument("--max-attempts", type=positive_int, metavar="N")
    parser.add_argument(
        "--retry-strategy",
        metavar="JSON",
        help='e.g. {"kind": "fixed", "base_seconds": 10} (default: exponential backoff, '
        '{"kind": "exponential", "base_seconds": 2, "factor": 2, "max_seconds": 600}; '
        '{"kind": "none"} retries at once)',
    )
    parser.add_argument(
        "--cancellation",
        metavar="JSON",
        help='e.g. {"max_delay": 3600, "max_duration": 86400} (seconds)',
    )
    parser.add_argument("--idempotency-key", metavar="KEY")
    parser.add_argument("--headers", metavar="JSON", help="task headers (a JSON object)")
    parser.add_argument(
        "--tasks",
        "-t",
        action="append",
        default=[],
        metavar="MODULE",
        help="import a module (dotted name or .py file) that registers tasks, so its "
        "registered queue and default attempts apply; repeatable",
    )
    add_json_option(parser, "print the spawn results as JSON")


def run_spawn(args: argparse.Namespace, session: Session) -> int:
    options = _spawn_options(args)
    if args.batch is not None:
        if args.params is not None or args.pairs or args.idempotency_key is not None:
            raise usage_error(
                "--batch takes the params from its lines: drop --params, -P and --idempotency-key."
            )
        batch = read_json_lines(args.batch, "--batch", nothing_done="Nothing was spawned.")
        if not batch:
            raise usage_error(f"--batch {args.batch} has no lines of params: nothing to spawn.")
    else:
        params = read_json(args.params, "--params") if args.params is not None else None
        if args.pairs:
            if params is None:
                params = {}
            if not isinstance(params, dict):
                raise usage_error(
                    "-P adds keys to the params, so --params must then be a JSON object."
                )
            params = {**params, **param_pairs(args.pairs)}
        batch = [params if params is not None else {}]
    from ..sdk.errors import TaskModuleError
    from ..sdk.registry import default_registry, load_task_modules

    # The registered queue and default attempts of the built-in tasks and of those the
    # --tasks modules register decide where a spawn without --queue goes, and how often
    # it is tried.
    register_builtin_tasks()
    try:
        load_task_modules(args.tasks)
    except TaskModuleError as exc:
        raise usage_error(str(exc)) from exc
    known = ops.is_known_task(args.task, default_registry)
    results = ops.spawn_batch(
        session.connection(),
        args.task,
        batch,
        queue=args.queue,
        registry=default_registry,
        **options,
    )
    if not known:
        where = "this process (--tasks MODULE names its module)"
        note(f"warning: {ops.unknown_task_message(args.task, results[0].queue, where=where)}")
    if args.json:
        data = [spawned_json(result) for result in results]
        print_json(data if args.batch is not None else data[0])
        return EXIT_OK
    for result in results:
        print(result.task_id)
        if not result.created:
            note(result.message)
    return EXIT_OK


def _spawn_options(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "max_attempts": args.max_attempts,
        "retry_strategy": read_json_object(args.retry_strategy, "--retry-strategy"),
        "cancellation": read_json_object(args.cancellation, "--cancellation"),
        "headers": read_json_object(args.headers, "--headers"),
        "idempotency_key": args.idempotency_key,
    }


def spawned_json(result: ops.Spawned) -> dict[str, Any]:
    """What ``spawn --json`` prints for each task (the keys scripts rely on)."""
    return {
        "task_id": result.task_id,
        "run_id": result.run_id,
        "attempt": result.attempt,
        "created": result.created,
        "queue": result.queue,
    }


def configure_emit(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Emit an event on a queue: tasks waiting for it wake up, and tasks that wait for "
        "it later see it at once. The first emit of a name wins; later ones change nothing."
    )
    parser.add_argument("event", metavar="EVENT", help="event name")
    parser.add_argument("--queue", "-q", default=DEFAULT_QUEUE, help="queue (default: %(default)s)")
    parser.add_argument("--payload", metavar="JSON", help="event payload (JSON; @FILE, @- read it)")


def run_emit(args: argparse.Namespace, session: Session) -> int:
    payload = read_json(args.payload, "--payload") if args.payload is not None else None
    return report(ops.emit(session.connection(), args.queue, args.event, payload))
