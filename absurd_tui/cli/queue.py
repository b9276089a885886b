"""``queue list | create | drop``."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

from .. import ops
from ..db import reads
from ..db.models import STATES, QueueSummary
from ..text import count_label, quote
from .options import add_command_parser, add_json_option
from .output import ago, confirm, note, print_json, report, table
from .session import EXIT_OK, PROG, Session, operation_failed, usage_error


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = "List, create and drop queues."
    commands = parser.add_subparsers(dest="queue_command", metavar="ACTION", required=True)

    listing = add_command_parser(commands, "list", "every queue with its task counts by state")
    add_json_option(listing)
    listing.set_defaults(run=run_list)

    create = add_command_parser(commands, "create", "create a queue (no-op if it exists)")
    create.add_argument("queue", metavar="QUEUE")
    create.set_defaults(run=run_create)

    drop = add_command_parser(
        commands, "drop", "drop a queue with all its tasks, runs, checkpoints and events"
    )
    drop.add_argument("queue", metavar="QUEUE")
    drop.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    drop.set_defaults(run=run_drop)


def run_list(args: argparse.Namespace, session: Session) -> int:
    summaries = reads.queue_summaries(session.connection())
    if args.json:
        print_json([_queue_json(s) for s in summaries])
        return EXIT_OK
    if not summaries:
        note(f"No queues yet. Create one with: {PROG} queue create NAME")
        return EXIT_OK
    now = datetime.now(UTC)
    print(
        table(
            ["QUEUE", *(s.upper() for s in STATES), "CLAIMABLE", "OLDEST WAITING"],
            [
                [
                    s.queue,
                    *(count_label(s.count(state)) for state in STATES),
                    count_label(s.claimable),
                    ago(s.oldest_claimable_at, now),
                ]
                for s in summaries
            ],
        )
    )
    return EXIT_OK


def _queue_json(summary: QueueSummary) -> dict[str, Any]:
    counts = dict(summary.counts)
    return {
        "queue": summary.queue,
        "created_at": summary.created_at,
        "counts": {state: count.value for state, count in counts.items()},
        "claimable": summary.claimable.value,
        "oldest_claimable_at": summary.oldest_claimable_at,
        # Counts of big queues are capped or planner estimates.
        "approximate": sorted(
            name
            for name, count in [*counts.items(), ("claimable", summary.claimable)]
            if count.capped or count.estimated
        ),
    }


def run_create(args: argparse.Namespace, session: Session) -> int:
    return report(ops.create_queue(session.connection(), args.queue))


def run_drop(args: argparse.Namespace, session: Session) -> int:
    conn = session.connection()
    if not args.yes:
        ops.resolve_queue(conn, args.queue)
        total = count_label(reads.queue_summary(conn, args.queue).total)
        if not sys.stdin.isatty():
            raise usage_error(
                f"Dropping queue {quote(args.queue)} deletes its {total} task(s); "
                "pass --yes to confirm when not at a terminal."
            )
        question = (
            f"Drop queue {quote(args.queue)} with its {total} task(s) and all their runs, "
            "checkpoints and events? This cannot be undone. [y/N] "
        )
        if not confirm(question):
            raise operation_failed(f"Queue {quote(args.queue)} was not dropped.")
    return report(ops.drop_queue(conn, args.queue))
