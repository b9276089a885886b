"""``spawn`` and ``emit``: new work and events."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from ..config import DEFAULT_QUEUE
from ..db import reads
from .inputs import param_pairs, positive_int, read_json, read_json_lines, read_json_object
from .options import add_json_option
from .output import note, print_json, quote
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
        help='e.g. {"kind": "exponential", "base_seconds": 10, "factor": 2, "max_seconds": 600}',
    )
    parser.add_argument(
        "--cancellation",
        metavar="JSON",
        help='e.g. {"max_delay": 3600, "max_duration": 86400} (seconds)',
    )
    parser.add_argument("--idempotency-key", metavar="KEY")
    parser.add_argument("--headers", metavar="JSON", help="task headers (a JSON object)")
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
    queue = args.queue or _registered_queue(args.task) or DEFAULT_QUEUE
    session.require_queue(queue)
    results = _spawn_all(session, args.task, queue, batch, options)
    if args.json:
        print_json(results if args.batch is not None else results[0])
        return EXIT_OK
    for result in results:
        print(result["task_id"])
        if not result.get("created", True):
            note(
                f"An existing task has idempotency key {quote(args.idempotency_key)}: "
                "nothing new was spawned."
            )
    return EXIT_OK


def _spawn_options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if args.max_attempts is not None:
        options["max_attempts"] = args.max_attempts
    retry_strategy = read_json_object(args.retry_strategy, "--retry-strategy")
    if retry_strategy is not None:
        options["retry_strategy"] = retry_strategy
    cancellation = read_json_object(args.cancellation, "--cancellation")
    if cancellation is not None:
        options["cancellation"] = cancellation
    if args.headers is not None:
        options["headers"] = read_json_object(args.headers, "--headers")
    if args.idempotency_key is not None:
        options["idempotency_key"] = args.idempotency_key
    return options


def _registered_queue(task_name: str) -> str | None:
    """The queue a built-in task (the agent) is registered on, if any."""
    from ..sdk.registry import default_registry

    register_builtin_tasks()
    registration = default_registry.get(task_name)
    return registration.queue if registration is not None else None


def _spawn_all(
    session: Session, task: str, queue: str, batch: list[Any], options: dict[str, Any]
) -> list[dict[str, Any]]:
    from ..sdk import Absurd
    from ..sdk.errors import NotJSONError

    conn = session.connection()
    client = Absurd(conn, queue_name=queue)
    results = []
    try:
        # One transaction for the whole batch: it is spawned completely or not at all.
        with conn.transaction():
            for params in batch:
                result = client.spawn(task, params, queue=queue, **options)
                results.append(with_queue(result, queue))
    except (NotJSONError, ValueError) as exc:
        # The SDK checks its input (JSON, options, the task's registered queue)
        # before any SQL; nothing was committed.
        raise usage_error(str(exc)) from exc
    return results


def with_queue(result: Mapping[str, Any], queue: str) -> dict[str, Any]:
    """A spawn or retry result (task_id, run_id, attempt, created) as plain JSON."""
    return {**result, "queue": queue}


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
    if not args.event.strip():
        raise usage_error("The event name must not be empty.")
    session.require_queue(args.queue)
    earlier = reads.event_emitted_at(session.connection(), args.queue, args.event)
    if earlier is not None:
        # The engine keeps the first payload of an event (first emit wins): say so
        # rather than report an emit that changed nothing.
        print(
            f"{quote(args.event)} was already emitted on queue {quote(args.queue)} at "
            f"{earlier:%Y-%m-%d %H:%M:%S %Z}; the first emit wins, so nothing changed."
        )
        return EXIT_OK
    session.client(args.queue).emit_event(args.event, payload, queue_name=args.queue)
    print(f"Emitted {quote(args.event)} on queue {quote(args.queue)}.")
    return EXIT_OK
