"""Logging to stderr with the DSN's password scrubbed, and safe one-line messages."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from ..db import dsn as dsn_text
from .output import plain


class ScrubbingFormatter(logging.Formatter):
    """Formats log records (tracebacks included) with the DSN's password removed."""

    def __init__(self, fmt: str, secret: str | None):
        super().__init__(fmt, datefmt="%Y-%m-%d %H:%M:%S")
        self.secret = secret

    def format(self, record: logging.LogRecord) -> str:
        return plain(dsn_text.scrub(super().format(record), self.secret), multiline=True)


def configure_logging(args: argparse.Namespace, secret: str | None) -> Callable[[], None]:
    """Log to stderr at the level ``-v`` asks for; returns how to undo it, so that
    ``main()`` leaves the process as it found it when called in-process."""
    verbosity = args.verbose or 0
    # Logger names help when debugging; a worker's everyday log is its output.
    fmt = "%(asctime)s %(levelname)s " + ("%(name)s: " if verbosity else "") + "%(message)s"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(ScrubbingFormatter(fmt, secret))
    root = logging.getLogger()
    package = logging.getLogger("absurd_tui")
    saved = (list(root.handlers), root.level, package.level)
    root.handlers[:] = [handler]
    root.setLevel({0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG))
    if args.command == "worker":
        # A worker's log is its output: one line per task start, step, end or failure.
        package.setLevel(logging.DEBUG if verbosity >= 2 else logging.INFO)

    def restore() -> None:
        handlers, root_level, package_level = saved
        root.handlers[:] = handlers
        root.setLevel(root_level)
        package.setLevel(package_level)

    return restore


def one_line(error: BaseException | str, secret: str | None) -> str:
    """One safe line: whitespace collapsed, the password scrubbed, controls escaped."""
    text = " ".join(str(error).split()) or type(error).__name__
    return plain(dsn_text.scrub(text, secret))
