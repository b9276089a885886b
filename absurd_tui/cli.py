"""The ``absurd-tui`` command line: the console, every operation, headless workers.

This module only parses arguments, calls the SDK (``absurd_tui.sdk``), the worker
runtime (``absurd_tui.runtime``) or the read queries (``absurd_tui.db.reads``), and
turns results into text. Nothing here decides how the engine behaves.

Exit codes: 0 success; 1 the operation failed (the engine refused it, e.g. a retry of a
task that is not failed); 2 bad usage, bad input or an unreachable database. Errors are
one paragraph on stderr, never a traceback (``-v`` logs it). Input is validated before
anything is written, so bad input changes nothing.

Adding a command: write ``configure(parser)`` and ``run(args, session) -> int`` (here,
or in the feature's own package, e.g. ``absurd_tui/agent/cli.py``) and append a
``Command`` to ``COMMANDS``. ``configure`` receives a parser that already has the global
options (``--dsn``, ``--data-dir``, ``-v``); ``run`` gets the parsed arguments and a
``Session`` that opens the database and SDK clients on first use and closes them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import re
import signal
import sys
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from . import text as screen
from .agent import cli as agent_cli
from .config import DEFAULT_QUEUE, DSN_ENV, resolve_settings
from .db import dsn as dsn_text
from .db import reads

if TYPE_CHECKING:
    import psycopg

    from .db import Database

log = logging.getLogger(__name__)
worker_log = logging.getLogger("absurd_tui.worker")

PROG = "absurd-tui"
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """An error whose message is complete and meant for the user, with its exit code."""

    def __init__(self, message: str, code: int = EXIT_USAGE):
        super().__init__(message)
        self.code = code


def usage_error(message: str) -> CliError:
    return CliError(message, EXIT_USAGE)


def operation_failed(message: str) -> CliError:
    return CliError(message, EXIT_FAILED)


# --------------------------------------------------------------------------- session


class Session:
    """What one invocation shares: settings, and the database opened on first use."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.settings = resolve_settings(dsn=args.dsn, data_dir=args.data_dir)
        self._database: Database | None = None
        self._conn: psycopg.Connection | None = None
        self._closers: list[Callable[[], None]] = []

    def database(self, *, install: bool = False) -> Database:
        if self._database is None or install:
            from .db import open_database

            self._database = open_database(self.settings, install=install)
        return self._database

    def connection(self) -> psycopg.Connection:
        """One autocommit connection for this command's reads."""
        if self._conn is None:
            self._conn = self.database().connect()
            self._closers.append(self._conn.close)
        return self._conn

    def client(self, queue: str = DEFAULT_QUEUE):
        """An SDK client whose default queue is ``queue``."""
        from .sdk import Absurd

        # The command's one autocommit connection: a short command needs no pool.
        return Absurd(self.connection(), queue_name=queue)

    def queue_names(self) -> list[str]:
        return reads.queue_names(self.connection())

    def require_queue(self, queue: str) -> None:
        """Refuse an unknown queue before anything is written."""
        names = self.queue_names()
        if queue in names:
            return
        known = ", ".join(quote(n) for n in names) if names else "none yet"
        raise usage_error(
            f"Unknown queue {quote(queue)} (queues: {known}). "
            f"Create it with: {PROG} queue create {shell_word(queue)}"
        )

    def find_task(self, ref: str, queue: str | None):
        """Resolve a full id, a unique prefix or the short id that tables show."""
        if queue is not None:
            self.require_queue(queue)
        return reads.find_task(self.connection(), ref, queue)

    @property
    def dsn(self) -> str | None:
        """The DSN in use, once known (the embedded server's is known once started)."""
        return self._database.dsn if self._database is not None else self.settings.dsn

    @property
    def secret(self) -> str | None:
        """The DSN whose password must be scrubbed from anything we print."""
        return self.settings.dsn

    def close(self) -> None:
        while self._closers:
            closer = self._closers.pop()
            try:
                closer()
            except Exception:
                log.debug("error while closing", exc_info=True)


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, Session], int] | None = None
    """None for a command that only groups subcommands (``queue``)."""


# --------------------------------------------------------------------------- output


# User data is escaped exactly as the console does it (absurd_tui/ui/text.py, which
# imports Rich but not Textual): control characters and bidi overrides become visible
# escapes, so nothing a task stored can style, move the cursor or retitle the terminal.
# JSON output escapes the same characters as \\uXXXX; json.dumps does the C0 range.
_UNSAFE_IN_JSON = re.compile("[\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def plain(text: Any, *, multiline: bool = False) -> str:
    """User data made inert for a terminal (one line unless ``multiline``)."""
    return screen.clean(text, single_line=not multiline)


def quote(text: str) -> str:
    """A name in a message, quoted and safe: ``"my queue"``."""
    return '"' + plain(text).replace('"', '\\"') + '"'


def shell_word(text: str) -> str:
    import shlex

    return shlex.quote(plain(text))


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Aligned plain-text columns, one row per line: greppable, never truncated."""
    from rich.cells import cell_len

    cells = [[cell(value) for value in row] for row in rows]
    widths = [cell_len(h) for h in headers]
    for row in cells:
        for i, text in enumerate(row):
            widths[i] = max(widths[i], cell_len(text))

    def line(values: Sequence[str]) -> str:
        padded = (v + " " * (w - cell_len(v)) for v, w in zip(values, widths, strict=False))
        return "  ".join(padded).rstrip()

    return "\n".join([line(headers), *(line(row) for row in cells)])


def cell(value: Any) -> str:
    if isinstance(value, datetime):
        value = screen.timestamp(value)
    text = plain(value)
    return text if text else "-"


def ago(moment: datetime | None, now: datetime) -> str:
    return f"{screen.age(moment, now)} ago" if moment is not None else "-"


def _to_json(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (tuple, set, frozenset)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def print_json(value: Any) -> None:
    text = json.dumps(value, default=_to_json, ensure_ascii=False, indent=2)
    # Only possible inside JSON strings, so escaping them keeps the document valid.
    print(_UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text))


def pretty_json(value: Any) -> str:
    return plain(screen.pretty(value), multiline=True)


def note(message: str) -> None:
    """A remark for the human on stderr, kept out of stdout that scripts capture."""
    print(message, file=sys.stderr)


# --------------------------------------------------------------------------- input


def read_json(text: str, option: str) -> Any:
    """Parse a JSON option; ``@FILE`` reads it from a file and ``@-`` from stdin."""
    source = option
    if text.startswith("@"):
        path = text[1:]
        source = f"{option} (from {'standard input' if path == '-' else path})"
        try:
            text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise usage_error(f"Cannot read {option} from {path}: {exc.strerror or exc}.") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise usage_error(
            f"{source} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}."
        ) from exc


def read_json_object(text: str | None, option: str) -> dict[str, Any] | None:
    if text is None:
        return None
    value = read_json(text, option)
    if not isinstance(value, dict):
        raise usage_error(f"{option} must be a JSON object, not {_json_kind(value)}.")
    return value


def _json_kind(value: Any) -> str:
    return {
        list: "an array",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def param_pairs(pairs: Sequence[str]) -> dict[str, Any]:
    """``-P key=value`` (a string) and ``-P key:=JSON`` (any JSON value)."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key or key == ":":
            raise usage_error(
                f"-P {pair!r} is not key=value (a string) or key:=JSON (a typed value)."
            )
        if key.endswith(":"):
            key = key[:-1]
            params[key] = read_json(value, f"-P {key}")
        else:
            params[key] = value
    return params


def at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number no smaller than ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is less than {minimum}")
        return value

    return parse


positive_int = at_least(1)


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a non-negative number of seconds")
    return value


# --------------------------------------------------------------------------- init, dsn


def configure_init(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Install the Absurd schema into the database, or upgrade it in place keeping all "
        "data (the same command), and print its version."
    )


def run_init(args: argparse.Namespace, session: Session) -> int:
    database = session.database(install=True)
    where = database.label
    if database.embedded:
        where = f"the embedded server in {session.settings.data_dir}"
    print(f"Absurd schema {database.schema.label()} is installed in {where}.")
    return EXIT_OK


def configure_dsn(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Print the connection string of the database in use, for psql and other Absurd "
        "SDKs. With no --dsn or ABSURD_DATABASE_URL that is the embedded server's Unix "
        "socket. The password is left out unless --show-password."
    )
    parser.add_argument("--show-password", action="store_true", help="include the password")


def run_dsn(args: argparse.Namespace, session: Session) -> int:
    if session.settings.embedded:
        dsn = session.database().dsn
    else:
        # The configured server needs no connection to be named, and `dsn` must work
        # before `init` has installed anything there.
        assert session.settings.dsn is not None
        dsn = session.settings.dsn
    print(dsn if args.show_password else dsn_text.redact(dsn))
    if session.settings.embedded and sys.stderr.isatty():
        note(
            "The embedded server runs while an absurd-tui process uses it (the console "
            "or a worker); keep one running while other tools connect."
        )
    return EXIT_OK


# --------------------------------------------------------------------------- queues


def configure_queue(parser: argparse.ArgumentParser) -> None:
    parser.description = "List, create and drop queues."
    commands = parser.add_subparsers(dest="queue_command", metavar="ACTION", required=True)

    listing = add_command_parser(commands, "list", "every queue with its task counts by state")
    add_json_option(listing)
    listing.set_defaults(run=run_queue_list)

    create = add_command_parser(commands, "create", "create a queue (no-op if it exists)")
    create.add_argument("queue", metavar="QUEUE")
    create.set_defaults(run=run_queue_create)

    drop = add_command_parser(
        commands, "drop", "drop a queue with all its tasks, runs, checkpoints and events"
    )
    drop.add_argument("queue", metavar="QUEUE")
    drop.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    drop.set_defaults(run=run_queue_drop)


def run_queue_list(args: argparse.Namespace, session: Session) -> int:
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
            ["QUEUE", *(s.upper() for s in reads.STATES), "CLAIMABLE", "OLDEST WAITING"],
            [
                [
                    s.queue,
                    *(screen.count_label(s.count(state)) for state in reads.STATES),
                    screen.count_label(s.claimable),
                    ago(s.oldest_claimable_at, now),
                ]
                for s in summaries
            ],
        )
    )
    return EXIT_OK


def _queue_json(summary) -> dict[str, Any]:
    counts = dict(summary.counts)
    return {
        "queue": summary.queue,
        "created_at": summary.created_at,
        "counts": {state: count.value for state, count in counts.items()},
        "claimable": summary.claimable.value,
        "oldest_claimable_at": summary.oldest_claimable_at,
        # Counts of big queues are capped or planner estimates (see db/reads.py).
        "approximate": sorted(
            name
            for name, count in [*counts.items(), ("claimable", summary.claimable)]
            if count.capped or count.estimated
        ),
    }


def run_queue_create(args: argparse.Namespace, session: Session) -> int:
    existed = args.queue in session.queue_names()
    client = session.client()
    try:
        client.create_queue(args.queue)
    except ValueError as exc:  # the SDK's queue-name check, before any SQL
        raise usage_error(str(exc)) from exc
    print(f"Queue {quote(args.queue)} {'already exists' if existed else 'created'}.")
    return EXIT_OK


def run_queue_drop(args: argparse.Namespace, session: Session) -> int:
    session.require_queue(args.queue)
    total = screen.count_label(reads.queue_summary(session.connection(), args.queue).total)
    if not args.yes:
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
    session.client().drop_queue(args.queue)
    print(f"Queue {quote(args.queue)} dropped ({total} task(s)).")
    return EXIT_OK


def confirm(question: str) -> bool:
    print(question, end="", file=sys.stderr, flush=True)
    try:
        answer = input()
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


# --------------------------------------------------------------------------- spawn, emit


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
        batch = _read_batch(args.batch)
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


def _read_batch(path: str) -> list[Any]:
    try:
        if path == "-":
            lines = sys.stdin.read().splitlines()
        else:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise usage_error(f"Cannot read --batch {path}: {exc.strerror or exc}.") from exc
    batch = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            batch.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise usage_error(
                f"Line {number} of --batch {path} is not valid JSON: {exc.msg} at column "
                f"{exc.colno}. Nothing was spawned."
            ) from exc
    if not batch:
        raise usage_error(f"--batch {path} has no lines of params: nothing to spawn.")
    return batch


def _registered_queue(task_name: str) -> str | None:
    """The queue a built-in task (the agent) is registered on, if any."""
    from .sdk.registry import default_registry

    register_builtin_tasks()
    registration = default_registry.get(task_name)
    return registration.queue if registration is not None else None


def _spawn_all(
    session: Session, task: str, queue: str, batch: list[Any], options: dict[str, Any]
) -> list[dict[str, Any]]:
    from .sdk import Absurd
    from .sdk.errors import NotJSONError

    conn = session.connection()
    client = Absurd(conn, queue_name=queue)
    results = []
    try:
        # One transaction for the whole batch: it is spawned completely or not at all.
        with conn.transaction():
            for params in batch:
                result = client.spawn(task, params, queue=queue, **options)
                results.append(_with_queue(result, queue))
    except (NotJSONError, ValueError) as exc:
        # The SDK checks its input (JSON, options, the task's registered queue)
        # before any SQL; nothing was committed.
        raise usage_error(str(exc)) from exc
    return results


def _with_queue(result: Mapping[str, Any], queue: str) -> dict[str, Any]:
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


# --------------------------------------------------------------------------- retry, cancel


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
    data = _with_queue(result, ref.queue)
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


def add_task_id_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "task_id",
        metavar="TASK_ID",
        help="a task id, a unique prefix of it, or the short id shown in tables",
    )
    parser.add_argument("--queue", "-q", help="look only in this queue")


# --------------------------------------------------------------------------- reads


def configure_tasks(parser: argparse.ArgumentParser) -> None:
    parser.description = "List tasks, newest first."
    parser.add_argument("--queue", "-q", help="only this queue (default: every queue)")
    parser.add_argument("--state", "-s", choices=reads.STATES)
    parser.add_argument("--name", "-n", help="task name prefix")
    parser.add_argument(
        "--limit", type=positive_int, default=50, help="at most N rows (default: %(default)s)"
    )
    add_json_option(parser)


def run_tasks(args: argparse.Namespace, session: Session) -> int:
    if args.queue is not None:
        session.require_queue(args.queue)
    flt = reads.TaskFilter(queue=args.queue, state=args.state, name=args.name)
    page = reads.list_tasks(session.connection(), flt, limit=args.limit)
    if args.json:
        print_json([dataclasses.asdict(row) for row in page.rows])
        return EXIT_OK
    if not page.rows:
        note(f"No tasks ({screen.filter_label(flt)}).")
        return EXIT_OK
    now = datetime.now(UTC)
    print(
        table(
            ["ID", "QUEUE", "NAME", "STATE", "ATTEMPT", "STEP", "UPDATED", "WORKER"],
            [
                [
                    reads.short_id(row.task_id),
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
            f"Showing {len(page.rows)} of {screen.count_label(page.matches)} tasks "
            f"({screen.filter_label(flt)}); "
            "use --limit for more."
        )
    return EXIT_OK


def _state_label(row) -> str:
    if row.state == "sleeping" and row.wake_event:
        return f"waiting for {row.wake_event}"
    return row.state


def configure_show(parser: argparse.ArgumentParser) -> None:
    parser.description = "Show one task: its fields, runs, checkpoints and pending waits."
    add_task_id_argument(parser)
    add_json_option(parser)


def run_show(args: argparse.Namespace, session: Session) -> int:
    ref = session.find_task(args.task_id, args.queue)
    detail = reads.task_detail(session.connection(), ref.queue, ref.task_id)
    if detail is None:
        raise usage_error(
            f"Task {ref.task_id} disappeared (its queue was dropped or it was cleaned up)."
        )
    if args.json:
        print_json(dataclasses.asdict(detail))
        return EXIT_OK
    print(render_detail(detail))
    return EXIT_OK


def render_detail(detail) -> str:
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
        out.extend(["", f"{title}:", _indent(pretty_json(value))])

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
        out.extend(["", "last failure:", _indent(render_failure(failure))])

    out.extend(["", "runs:"])
    out.append(
        _indent(
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
            _indent(
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
            _indent(
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


def _indent(text: str, prefix: str = "  ") -> str:
    return "\n".join(prefix + line if line else line for line in text.split("\n"))


def configure_events(parser: argparse.ArgumentParser) -> None:
    parser.description = "Show the tasks waiting for events, and the events emitted."
    parser.add_argument("--queue", "-q", help="only this queue (default: every queue)")
    parser.add_argument(
        "--limit", type=positive_int, default=100, help="at most N of each (default: %(default)s)"
    )
    add_json_option(parser)


def run_events(args: argparse.Namespace, session: Session) -> int:
    if args.queue is not None:
        session.require_queue(args.queue)
    conn = session.connection()
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
            _indent(
                table(
                    ["TASK", "QUEUE", "NAME", "EVENT", "STEP", "SINCE", "TIMEOUT"],
                    [
                        [
                            reads.short_id(w.task_id),
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
            _indent(
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


# --------------------------------------------------------------------------- worker


def configure_worker(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Run headless worker threads until SIGINT or SIGTERM; then stop claiming, let "
        "running tasks finish for up to --grace seconds, and exit. Start as many as you "
        "like, on any machines that reach the database: claims never overlap."
    )
    parser.add_argument(
        "--queue",
        "-q",
        dest="queues",
        action="append",
        metavar="Q",
        help="serve this existing queue (repeatable; default: 'default' and the queues "
        "of the registered tasks, created if missing)",
    )
    parser.add_argument(
        "--concurrency",
        "-c",
        type=positive_int,
        default=4,
        metavar="N",
        help="worker threads (default: %(default)s)",
    )
    parser.add_argument(
        "--tasks",
        "-t",
        action="append",
        default=[],
        metavar="MODULE",
        help="import a module (dotted name or .py file) that registers tasks; repeatable",
    )
    parser.add_argument(
        "--claim-timeout",
        type=positive_int,
        default=60,
        metavar="S",
        help="lease in seconds, renewed while a task runs; the tasks of a worker that "
        "dies are reclaimed this long after its last renewal (default: %(default)s)",
    )
    parser.add_argument(
        "--grace",
        type=non_negative_float,
        default=30.0,
        metavar="S",
        help="on SIGINT/SIGTERM, wait this long for running tasks to finish (default: %(default)s)",
    )


def run_worker(args: argparse.Namespace, session: Session) -> int:
    from .runtime import WorkerPool
    from .sdk.errors import TaskModuleError
    from .sdk.registry import default_registry, load_task_modules

    register_builtin_tasks()
    try:
        load_task_modules(args.tasks)
    except TaskModuleError as exc:
        raise usage_error(str(exc)) from exc
    database = session.database()
    if args.queues:
        queues = list(dict.fromkeys(args.queues))
        for queue in queues:
            session.require_queue(queue)
    else:
        # The queues of the tasks this worker knows, created if missing as the console
        # does for its own workers (creating a queue is idempotent).
        queues = list(dict.fromkeys([DEFAULT_QUEUE, *default_registry.queues()]))
        client = session.client()
        for queue in queues:
            client.create_queue(queue)
    session.close()  # the pool opens its own connections; this one would sit idle

    stop = threading.Event()
    received: list[int] = []
    pool: WorkerPool | None = None

    def on_signal(signum: int, frame: Any) -> None:
        received.append(signum)
        if len(received) > 1 and pool is not None:
            pool.end_grace()  # a second signal: hand back what still runs, now
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    reporter = StatusReporter()
    pool = WorkerPool(
        database.dsn,
        registry=default_registry,
        queues=queues,
        concurrency=args.concurrency,
        claim_timeout=args.claim_timeout,
        on_status=reporter,
    )
    try:
        pool.start()
        worker_log.info(
            "Worker %s ready on %s: %d thread(s), queue(s) %s, tasks %s",
            pool.worker_prefix,
            database.label,
            args.concurrency,
            ", ".join(queues),
            ", ".join(default_registry.names()) or "(none registered)",
        )
        while not stop.wait(1.0):
            pass
        worker_log.info(
            "%s: claiming no more; giving running tasks up to %g s to finish "
            "(signal again to hand them back at once)",
            signal.Signals(received[0]).name,
            args.grace,
        )

        def progress(running: int) -> None:
            worker_log.info("Stopping: %d task(s) running", running)

        handed_back = pool.stop(grace=args.grace, on_progress=progress)
        if handed_back:
            worker_log.warning(
                "Stopped with %d task(s) unfinished, handed back to their queue: the next "
                "worker resumes them after their last completed step, in the same attempt",
                handed_back,
            )
        else:
            worker_log.info("Stopped cleanly")
        return EXIT_OK
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def register_builtin_tasks() -> None:
    """The tasks every worker knows without --tasks: the LLM agent."""
    from .agent.task import register_agent

    register_agent()


class StatusReporter:
    """Logs each step a task begins (the pool itself logs starts, ends and failures)
    and counts the threads that hold a task."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: dict[int, Any] = {}

    def busy(self) -> int:
        with self._lock:
            return sum(
                1
                for s in self._current.values()
                if s.task_id and s.state in ("running", "disconnected")
            )

    def __call__(self, status: Any) -> None:
        with self._lock:
            before = self._current.get(status.index)
            self._current[status.index] = status
        if (
            status.state == "running"
            and status.step
            and (before is None or before.task_id != status.task_id or before.step != status.step)
        ):
            worker_log.info("Task %r %s step %r", status.task_name, status.task_id, status.step)


# --------------------------------------------------------------------------- console


def run_console(args: argparse.Namespace, session: Session) -> int:
    from .sdk.errors import TaskModuleError
    from .sdk.registry import load_task_modules
    from .ui import run_tui

    # Problems a user can fix are reported here, with the CLI's exit codes, before the
    # console takes over the terminal; run_tui then finds both already done.
    register_builtin_tasks()
    task_modules = tuple(args.tui_tasks or ())
    try:
        load_task_modules(task_modules)
    except TaskModuleError as exc:
        raise usage_error(str(exc)) from exc
    session.database()
    return run_tui(
        session.settings,
        workers=args.tui_workers if args.tui_workers is not None else 2,
        queues=args.tui_queues or None,
        task_modules=task_modules,
        no_workers=args.no_workers,
        refresh=args.refresh if args.refresh is not None else 1.0,
    )


# --------------------------------------------------------------------------- parser


COMMANDS: list[Command] = [
    Command("init", "install or upgrade the schema; print its version", configure_init, run_init),
    Command("dsn", "print the connection string of the database in use", configure_dsn, run_dsn),
    Command("queue", "list, create or drop queues", configure_queue),
    Command("spawn", "spawn a task; print its id", configure_spawn, run_spawn),
    Command("emit", "emit an event", configure_emit, run_emit),
    Command("retry", "retry a failed task", configure_retry, run_retry),
    Command("cancel", "cancel a task", configure_cancel, run_cancel),
    Command("tasks", "list tasks", configure_tasks, run_tasks),
    Command("show", "show a task with its runs, checkpoints and waits", configure_show, run_show),
    Command("events", "show pending event waits and emitted events", configure_events, run_events),
    Command(
        "workers", "show the workers running tasks, on any machine", configure_workers, run_workers
    ),
    Command("worker", "run headless workers", configure_worker, run_worker),
    Command("agent", agent_cli.HELP, agent_cli.configure, agent_cli.run),
]


def _global_options(*, top_level: bool) -> argparse.ArgumentParser:
    """--dsn, --data-dir and -v, accepted before the command and after it.

    Below the top level their defaults are SUPPRESS, so a subcommand parser never
    overwrites a value given before the command name.
    """
    parser = argparse.ArgumentParser(add_help=False)
    default = None if top_level else argparse.SUPPRESS
    group = parser.add_argument_group("database and logging")
    group.add_argument(
        "--dsn",
        default=default,
        metavar="DSN",
        help="PostgreSQL connection string (default: $ABSURD_DATABASE_URL, else the "
        "embedded server)",
    )
    group.add_argument(
        "--data-dir",
        default=default,
        metavar="DIR",
        help="where the embedded server keeps its data (default: your user data directory)",
    )
    group.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0 if top_level else argparse.SUPPRESS,
        help="log more (-vv for debug); errors then include their traceback",
    )
    return parser


_COMMON = _global_options(top_level=False)


def add_command_parser(subparsers, name: str, help: str) -> argparse.ArgumentParser:
    return subparsers.add_parser(name, help=help, parents=[_COMMON])


def add_json_option(parser: argparse.ArgumentParser, help: str = "print JSON for scripts") -> None:
    parser.add_argument("--json", action="store_true", help=help)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        parents=[_global_options(top_level=True)],
        description=(
            "Durable execution on nothing but PostgreSQL. Without a command, start the "
            "console with embedded worker threads."
        ),
        epilog="Run `absurd-tui COMMAND --help` for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
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
    parser.set_defaults(run=run_console, command=None)

    commands = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for command in COMMANDS:
        sub = add_command_parser(commands, command.name, command.help)
        command.configure(sub)
        if command.run is not None:
            sub.set_defaults(run=command.run)
    return parser


def _console_options_given(args: argparse.Namespace) -> list[str]:
    given = [
        ("--workers", args.tui_workers is not None),
        ("--queue", bool(args.tui_queues)),
        ("--tasks", bool(args.tui_tasks)),
        ("--no-workers", args.no_workers),
        ("--refresh", args.refresh is not None),
    ]
    return [name for name, present in given if present]


# --------------------------------------------------------------------------- main


class _ScrubbingFormatter(logging.Formatter):
    """Formats log records (tracebacks included) with the DSN's password removed."""

    def __init__(self, fmt: str, secret: str | None):
        super().__init__(fmt, datefmt="%Y-%m-%d %H:%M:%S")
        self.secret = secret

    def format(self, record: logging.LogRecord) -> str:
        from .db import dsn as dsn_text

        return plain(dsn_text.scrub(super().format(record), self.secret), multiline=True)


def _configure_logging(args: argparse.Namespace, secret: str | None) -> None:
    verbosity = args.verbose or 0
    # Logger names help when debugging; a worker's everyday log is its output.
    fmt = "%(asctime)s %(levelname)s " + ("%(name)s: " if verbosity else "") + "%(message)s"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_ScrubbingFormatter(fmt, secret))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel({0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG))
    if args.command == "worker":
        # A worker's log is its output: one line per task start, step, end or failure.
        logging.getLogger("absurd_tui").setLevel(logging.DEBUG if verbosity >= 2 else logging.INFO)


def _message(error: BaseException | str, secret: str | None) -> str:
    """One safe line: whitespace collapsed, the password scrubbed, controls escaped."""
    from .db import dsn as dsn_text

    text = " ".join(str(error).split()) or type(error).__name__
    return plain(dsn_text.scrub(text, secret))


def _fail(message: str, code: int, exc: BaseException | None = None) -> int:
    if exc is not None:
        log.error("the error below was caused by", exc_info=exc)
    print(f"{PROG}: {message}", file=sys.stderr)
    return code


def _engine_message(exc: BaseException) -> str:
    """The primary message of a server error, without psycopg's context lines."""
    diag = getattr(exc, "diag", None)
    return getattr(diag, "message_primary", None) or str(exc)


def main(argv: Sequence[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is not None:
        misplaced = _console_options_given(args)
        if misplaced:
            parser.error(
                f"{', '.join(misplaced)} before a command name only configure the console; "
                f"options of `{args.command}` go after it ({PROG} {args.command} --help)"
            )
    secret = args.dsn or os.environ.get(DSN_ENV)
    _configure_logging(args, secret)
    session: Session | None = None
    try:
        session = Session(args)
        return args.run(args, session)
    except CliError as exc:
        return _fail(_message(exc, secret), exc.code, exc if args.verbose else None)
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED)
    except BrokenPipeError:
        # The reader went away (`| head`); stay quiet and do not let the interpreter
        # complain again when it flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED
    except Exception as exc:
        code, message = _classify(exc, session)
        return _fail(message, code, exc if args.verbose else None)
    finally:
        if session is not None:
            session.close()


def _classify(exc: Exception, session: Session | None) -> tuple[int, str]:
    """The exit code and one-paragraph message for an error a command raised."""
    import psycopg

    from .db.connect import unavailable
    from .db.errors import DatabaseError
    from .sdk import errors as sdk_errors

    secret = session.secret if session is not None else None
    if isinstance(exc, DatabaseError):
        # Unreachable database, unusable schema, unknown or ambiguous task id: the
        # message is complete and written for the user.
        return EXIT_USAGE, _message(exc, secret)
    if isinstance(exc, (sdk_errors.NotJSONError, sdk_errors.TaskModuleError)):
        return EXIT_USAGE, _message(exc, secret)
    if _connection_lost(exc):
        dsn = session.dsn if session is not None else None
        return EXIT_USAGE, _message(unavailable(dsn or "", exc), secret)
    if isinstance(exc, psycopg.Error):
        # The engine refused the operation, e.g. 'Task "..." is not currently failed'.
        return EXIT_FAILED, _message(_engine_message(exc), secret)
    return EXIT_FAILED, (
        f"unexpected error: {type(exc).__name__}: {_message(exc, secret)} "
        "(run with -v to see the traceback)"
    )


def _connection_lost(exc: BaseException) -> bool:
    import psycopg

    if isinstance(exc, psycopg.InterfaceError):
        return True  # "the connection is closed"
    code = getattr(exc, "sqlstate", None)
    # No SQLSTATE: the client lost the server. Class 08 and 57P0x: the server said so.
    return isinstance(exc, psycopg.OperationalError) and (
        code is None or code.startswith("08") or code.startswith("57P0")
    )
