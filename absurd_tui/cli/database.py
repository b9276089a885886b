"""``init`` and ``dsn``: install the schema, name the database in use."""

from __future__ import annotations

import argparse
import sys

from ..db import dsn as dsn_text
from .output import note
from .session import EXIT_OK, Session


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
