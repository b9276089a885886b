"""``artifacts TASK [--out DIR] [--json]``: the files an agent task's code left in
``/output``, listed or written out (the export rules are ``agent.artifacts.export``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..agent.artifacts import ExportError, export, load_contents
from .options import add_json_option, add_task_id_argument
from .output import note, plain, print_json, table
from .session import EXIT_FAILED, EXIT_OK, PROG, CliError, Session
from .views import read_task, task_artifacts

HELP = "list the files an agent task produced (its /output), or save them with --out"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "The files an agent task's code left in /output: listed, or written under DIR with "
        "--out (by their path inside /output). A file already there with other content "
        "stops the export before anything is written."
    )
    add_task_id_argument(parser)
    parser.add_argument("--out", "-o", metavar="DIR", help="write the files under DIR")
    add_json_option(parser)


def run(args: argparse.Namespace, session: Session) -> int:
    conn = session.connection()
    # Every checkpoint: the files are the sum of all the task's calls.
    detail = read_task(conn, args.task_id, args.queue, checkpoint_limit=None)
    artifacts = task_artifacts(detail) or ()
    if args.out:
        contents = load_contents(conn, detail.queue, detail.task_id, [a.sha256 for a in artifacts])
        try:
            written = export(artifacts, contents, Path(args.out))
        except (ExportError, OSError) as exc:
            raise CliError(str(exc), EXIT_FAILED) from exc
        for path in written:
            print(plain(str(path), multiline=True))
        if not written:
            note(f"{PROG}: task {detail.task_id} has no files in /output")
        return EXIT_OK
    if args.json:
        print_json([artifact.to_json() for artifact in artifacts])
        return EXIT_OK
    if not artifacts:
        note(f"{PROG}: task {detail.task_id} has no files in /output")
        return EXIT_OK
    print(
        table(
            ["PATH", "SIZE", "TYPE", "SHA256"],
            [[a.path, f"{a.size:,}", a.media_type, a.sha256[:16]] for a in artifacts],
        )
    )
    return EXIT_OK
