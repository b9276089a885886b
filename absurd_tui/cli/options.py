"""Options shared by commands: the global ones (``--dsn``, ``--data-dir``, ``-v``),
``--json``, and the task-id argument."""

from __future__ import annotations

import argparse
from typing import Any


def global_options(*, top_level: bool) -> argparse.ArgumentParser:
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
        help="PostgreSQL connection string without its password, e.g. "
        "postgresql://app@db.internal:5432/app, the password then coming from PGPASSWORD or "
        "~/.pgpass (a password written here is visible to every local user in `ps`) "
        "(default: $ABSURD_DATABASE_URL, else the embedded server)",
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


_COMMON = global_options(top_level=False)


def add_command_parser(subparsers: Any, name: str, help: str) -> argparse.ArgumentParser:
    """A (sub)command's parser, which also accepts the global options."""
    parser: argparse.ArgumentParser = subparsers.add_parser(name, help=help, parents=[_COMMON])
    return parser


def add_json_option(parser: argparse.ArgumentParser, help: str = "print JSON for scripts") -> None:
    parser.add_argument("--json", action="store_true", help=help)


def add_task_id_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "task_id",
        metavar="TASK_ID",
        help="a task id, a unique prefix of it, or the short id shown in tables",
    )
    parser.add_argument("--queue", "-q", help="look only in this queue")
