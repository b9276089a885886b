"""The entry point: the parser of every command, ``main()``, and how an error that a
command raised becomes one paragraph on stderr and an exit code."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

import psycopg

from .. import __version__, ops
from ..config import DSN_ENV
from ..db import dsn as dsn_text
from ..db.errors import DatabaseError
from ..ops import ErrorKind
from ..sdk.errors import TaskModuleError
from . import agent, artifacts, console, database, queue, retry_cancel, spawn_emit, views, worker
from .logs import configure_logging, one_line
from .options import add_command_parser, global_options
from .session import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    PROG,
    CliError,
    Command,
    Session,
)

log = logging.getLogger("absurd_tui.cli")

COMMANDS: list[Command] = [
    Command(
        "init",
        "install or upgrade the schema; print its version",
        database.configure_init,
        database.run_init,
    ),
    Command(
        "dsn",
        "print the connection string of the database in use",
        database.configure_dsn,
        database.run_dsn,
    ),
    Command("queue", "list, create or drop queues", queue.configure),
    Command(
        "spawn", "spawn a task; print its id", spawn_emit.configure_spawn, spawn_emit.run_spawn
    ),
    Command("emit", "emit an event", spawn_emit.configure_emit, spawn_emit.run_emit),
    Command("retry", "retry a failed task", retry_cancel.configure_retry, retry_cancel.run_retry),
    Command("cancel", "cancel a task", retry_cancel.configure_cancel, retry_cancel.run_cancel),
    Command("tasks", "list tasks", views.configure_tasks, views.run_tasks),
    Command(
        "show",
        "show a task with its runs, checkpoints and waits",
        views.configure_show,
        views.run_show,
    ),
    Command(
        "events",
        "show pending event waits and emitted events",
        views.configure_events,
        views.run_events,
    ),
    Command(
        "workers",
        "show the workers running tasks, on any machine",
        views.configure_workers,
        views.run_workers,
    ),
    Command("worker", "run headless workers", worker.configure, worker.run),
    Command("agent", agent.HELP, agent.configure, agent.run),
    Command("artifacts", artifacts.HELP, artifacts.configure, artifacts.run),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        parents=[global_options(top_level=True)],
        description=(
            "Durable execution on nothing but PostgreSQL. Without a command, start the "
            "console with embedded worker threads."
        ),
        epilog="Run `absurd-tui COMMAND --help` for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    console.configure(parser)
    parser.set_defaults(run=console.run, command=None)

    commands = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for command in COMMANDS:
        sub = add_command_parser(commands, command.name, command.help)
        command.configure(sub)
        if command.run is not None:
            sub.set_defaults(run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is not None:
        misplaced = console.options_given(args)
        if misplaced:
            parser.error(
                f"{', '.join(misplaced)} before a command name only configure the console; "
                f"options of `{args.command}` go after it ({PROG} {args.command} --help)"
            )
    secret = args.dsn or os.environ.get(DSN_ENV)
    restore_logging = configure_logging(args, secret)
    if args.dsn and dsn_text.has_password(args.dsn):
        print(PASSWORD_ON_COMMAND_LINE, file=sys.stderr)
    session: Session | None = None
    try:
        session = Session(args)
        code: int = args.run(args, session)
        return code
    except CliError as exc:
        return _fail(one_line(exc, secret), exc.code, exc if args.verbose else None)
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED)
    except BrokenPipeError:
        # The reader went away (`| head`); stay quiet and do not let the interpreter
        # complain again when it flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED
    except Exception as exc:
        code, message = _report(exc, session)
        return _fail(message, code, exc if args.verbose else None)
    finally:
        if session is not None:
            session.close()
        restore_logging()


PASSWORD_ON_COMMAND_LINE = (
    f"{PROG}: warning: the password given with --dsn is visible to every user of this machine "
    "(ps, /proc); give --dsn without it and keep the password in PGPASSWORD or ~/.pgpass."
)


def _fail(message: str, code: int, exc: BaseException | None = None) -> int:
    if exc is not None:
        log.error("the error below was caused by", exc_info=exc)
    print(f"{PROG}: {message}", file=sys.stderr)
    return code


# How each kind of failure ends the process: what the user can fix (where they point
# us, what they typed, names that do not exist) is bad usage; what the engine or the
# moment decided (a refusal, a timeout, a conflicting change) is a failed operation.
EXIT_CODES: dict[ErrorKind, int] = {
    ErrorKind.CONNECTION_LOST: EXIT_USAGE,
    ErrorKind.BAD_INPUT: EXIT_USAGE,
    ErrorKind.NOT_FOUND: EXIT_USAGE,
    ErrorKind.REFUSED: EXIT_FAILED,
    ErrorKind.TIMED_OUT: EXIT_FAILED,
    ErrorKind.CONFLICT: EXIT_FAILED,
}


def _report(exc: Exception, session: Session | None) -> tuple[int, str]:
    """The exit code and one-paragraph message for an error a command raised."""
    secret = session.secret if session is not None else None
    conn = session.open_connection if session is not None else None
    # Only errors of the database and the layers over it are classified: anything
    # else is a bug, reported as one (ops would call a stray ValueError bad input).
    if isinstance(exc, (psycopg.Error, DatabaseError)) and ops.kind_of(exc, conn) is not None:
        error = ops.translate(exc, conn=conn, dsn=secret)
        return EXIT_CODES[error.kind], one_line(error, secret)
    if isinstance(exc, (DatabaseError, TaskModuleError)):
        # An unusable schema, a task module that does not import: the message is
        # complete and written for the user.
        return EXIT_USAGE, one_line(exc, secret)
    return EXIT_FAILED, (
        f"unexpected error: {type(exc).__name__}: {one_line(exc, secret)} "
        "(run with -v to see the traceback)"
    )
