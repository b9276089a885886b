"""``tasks``, ``show``, ``events`` and ``workers``: read-only views, tables for people
and ``--json`` for scripts."""

from __future__ import annotations

import argparse
import dataclasses
import json
from datetime import UTC, datetime
from typing import Any

from .. import ops
from .. import text as screen
from ..db import reads
from ..db.ids import short_id
from ..db.models import STATES, TaskDetail, TaskFilter, TaskRow
from ..text import count_label, filter_label
from .inputs import positive_int
from .options import add_json_option, add_task_id_argument
from .output import ago, indent, note, plain, pretty_json, print_json, table
from .session import EXIT_OK, Session, usage_error


def configure_tasks(parser: argparse.ArgumentParser) -> None:
    parser.description = "List tasks, newest first."
    parser.add_argument("--queue", "-q", help="only this queue (default: every queue)")
    parser.add_argument("--state", "-s", choices=STATES)
    parser.add_argument("--name", "-n", help="task name prefix")
    parser.add_argument(
        "--limit", type=positive_int, default=50, help="at most N rows (default: %(default)s)"
    )
    add_json_option(parser)


def run_tasks(args: argparse.Namespace, session: Session) -> int:
    conn = session.connection()
    if args.queue is not None:
        ops.resolve_queue(conn, args.queue)
    flt = TaskFilter(queue=args.queue, state=args.state, name=args.name)
    page = reads.list_tasks(conn, flt, limit=args.limit)
    if args.json:
        print_json([dataclasses.asdict(row) for row in page.rows])
        return EXIT_OK
    if not page.rows:
        note(f"No tasks ({plain(filter_label(flt))}).")
        return EXIT_OK
    now = datetime.now(UTC)
    print(
        table(
            ["ID", "QUEUE", "NAME", "STATE", "ATTEMPT", "STEP", "UPDATED", "WORKER"],
            [
                [
                    short_id(row.task_id),
                    row.queue,
                    row.task_name,
                    _state_label(row),
                    screen.attempts(row.attempts, row.max_attempts),
                    row.step,
                    ago(row.updated_at, now),
                    row.worker,
                ]
                for row in page.rows
            ],
        )
    )
    if page.next_after is not None or len(page.rows) < page.matches.value:
        note(
            f"Showing {len(page.rows)} of {count_label(page.matches)} tasks "
            f"({plain(filter_label(flt))}); "
            "use --limit for more."
        )
    return EXIT_OK


def _state_label(row: TaskRow) -> str:
    if row.state == "sleeping" and row.wake_event:
        return f"waiting for {row.wake_event}"
    return row.state


def configure_show(parser: argparse.ArgumentParser) -> None:
    parser.description = "Show one task: its fields, runs, checkpoints and pending waits."
    add_task_id_argument(parser)
    add_json_option(parser)


def run_show(args: argparse.Namespace, session: Session) -> int:
    conn = session.connection()
    ref = ops.resolve_task(conn, args.task_id, args.queue)
    detail = reads.task_detail(conn, ref.queue, ref.task_id)
    if detail is None:
        raise usage_error(
            f"Task {ref.task_id} disappeared (its queue was dropped or it was cleaned up)."
        )
    if args.json:
        print_json(dataclasses.asdict(detail))
        return EXIT_OK
    print(render_detail(detail))
    return EXIT_OK


def render_detail(detail: TaskDetail) -> str:
    attempts = f"{detail.attempts} of {detail.max_attempts or 'unlimited'}"
    fields = [
        ("id", str(detail.task_id)),
        ("name", detail.task_name),
        ("queue", detail.queue),
        ("state", detail.state),
        ("attempts", attempts),
        ("enqueued", detail.enqueue_at),
        ("started", detail.first_started_at),
        ("ended", detail.ended_at),
    ]
    if detail.idempotency_key is not None:
        fields.append(("idempotency key", detail.idempotency_key))
    out = [table(["FIELD", "VALUE"], fields).split("\n", 1)[1]]

    def block(title: str, value: Any) -> None:
        out.extend(["", f"{title}:", indent(pretty_json(value))])

    block("params", detail.params)
    if detail.headers is not None:
        block("headers", detail.headers)
    if detail.retry_strategy is not None:
        block("retry strategy", detail.retry_strategy)
    if detail.cancellation is not None:
        block("cancellation", detail.cancellation)
    if detail.state == "completed":
        block("result", detail.result)
    failure = detail.failure
    if failure is not None:
        out.extend(["", "last failure:", indent(render_failure(failure))])

    out.extend(["", "runs:"])
    out.append(
        indent(
            table(
                ["ATTEMPT", "RUN", "STATE", "WORKER", "STARTED", "ENDED", "FAILURE"],
                [
                    [
                        run.attempt,
                        str(run.run_id),
                        run.state,
                        run.claimed_by,
                        run.started_at,
                        run.ended_at,
                        _failure_line(run.failure_reason),
                    ]
                    for run in detail.runs
                ],
            )
        )
    )
    out.extend(["", "checkpoints:"])
    if detail.checkpoints:
        out.append(
            indent(
                table(
                    ["STEP", "UPDATED", "ATTEMPT", "VALUE"],
                    [
                        [c.name, c.updated_at, c.owner_attempt, screen.preview(c.state, 80)]
                        for c in detail.checkpoints
                    ],
                )
            )
        )
        if detail.checkpoints_truncated:
            shown = len(detail.checkpoints)
            out.append(f"  (only the first {shown} are shown; --json has the same limit)")
    else:
        out.append("  none")
    out.extend(["", "waiting for:"])
    if detail.waits:
        out.append(
            indent(
                table(
                    ["EVENT", "STEP", "SINCE", "TIMEOUT"],
                    [[w.event_name, w.step_name, w.created_at, w.timeout_at] for w in detail.waits],
                )
            )
        )
    else:
        out.append("  nothing")
    return "\n".join(out)


def render_failure(reason: Any) -> str:
    if isinstance(reason, dict):
        name = reason.get("name")
        message = reason.get("message")
        trace = reason.get("traceback") or reason.get("stack")
        if isinstance(name, str) or isinstance(message, str):
            head = ": ".join(str(part) for part in (name, message) if part)
            text = plain(head, multiline=True)
            if isinstance(trace, str) and trace.strip():
                text += "\n" + plain(trace.rstrip(), multiline=True)
            return text
    return pretty_json(reason)


def _failure_line(reason: Any) -> str | None:
    if reason is None:
        return None
    if isinstance(reason, dict) and (reason.get("name") or reason.get("message")):
        text = ": ".join(str(p) for p in (reason.get("name"), reason.get("message")) if p)
    else:
        text = json.dumps(reason, ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= 80 else text[:79] + "…"


def configure_events(parser: argparse.ArgumentParser) -> None:
    parser.description = "Show the tasks waiting for events, and the events emitted."
    parser.add_argument("--queue", "-q", help="only this queue (default: every queue)")
    parser.add_argument(
        "--limit", type=positive_int, default=100, help="at most N of each (default: %(default)s)"
    )
    add_json_option(parser)


def run_events(args: argparse.Namespace, session: Session) -> int:
    conn = session.connection()
    if args.queue is not None:
        ops.resolve_queue(conn, args.queue)
    waits = reads.pending_waits(conn, args.queue, limit=args.limit)
    events = reads.emitted_events(conn, args.queue, limit=args.limit)
    if args.json:
        print_json(
            {
                "waits": [dataclasses.asdict(w) for w in waits],
                "events": [dataclasses.asdict(e) for e in events],
            }
        )
        return EXIT_OK
    print("waiting:")
    if waits:
        print(
            indent(
                table(
                    ["TASK", "QUEUE", "NAME", "EVENT", "STEP", "SINCE", "TIMEOUT"],
                    [
                        [
                            short_id(w.task_id),
                            w.queue,
                            w.task_name,
                            w.event_name,
                            w.step_name,
                            w.created_at,
                            w.timeout_at,
                        ]
                        for w in waits
                    ],
                )
            )
        )
    else:
        print("  no task is waiting for an event")
    print("\nemitted:")
    if events:
        print(
            indent(
                table(
                    ["EVENT", "QUEUE", "EMITTED", "PAYLOAD"],
                    [
                        [e.event_name, e.queue, e.emitted_at, screen.preview(e.payload, 80)]
                        for e in events
                    ],
                )
            )
        )
    else:
        print("  no events emitted")
    return EXIT_OK


def configure_workers(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Show the workers that hold running tasks, on any machine, as the database sees "
        "them (claimed_by of running runs)."
    )
    add_json_option(parser)


def run_workers(args: argparse.Namespace, session: Session) -> int:
    seen = reads.workers_seen(session.connection())
    if args.json:
        print_json([dataclasses.asdict(w) for w in seen])
        return EXIT_OK
    if not seen:
        note("No worker is running a task right now.")
        return EXIT_OK
    now = datetime.now(UTC)
    print(
        table(
            ["WORKER", "QUEUES", "RUNNING", "LAST CLAIM", "LEASE ENDS"],
            [
                [
                    w.worker,
                    ", ".join(w.queues),
                    w.running,
                    ago(w.last_claim_at, now),
                    screen.until(w.lease_expires_at, now),
                ]
                for w in seen
            ],
        )
    )
    return EXIT_OK
