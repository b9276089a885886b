"""``absurd-tui agent "PROMPT"``: spawn the agent; with ``--follow``, run it here and
stream its transcript, answering its questions from standard input.

Wiring (``absurd_tui/cli.py``): ``Command("agent", HELP, configure, run)``, or
``add_agent_parser(subparsers)`` plus ``run_agent_command(args, settings)``.

Without ``--follow`` it prints the task id and leaves the work to workers serving the
queue (the TUI's, or ``absurd-tui worker``). With ``--follow`` it starts its own worker
thread for the queue, prints each part of the conversation as it is checkpointed, asks
on the terminal when the agent calls ``ask_human``, and exits when the task ends:
0 if it completed, 1 if it failed or was cancelled (or stdin closed while the agent
waits, which leaves it waiting), 2 for bad input.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from ..config import Settings
from .conversation import MAX_ITERATIONS_LIMIT
from .models import API_KEY_ENV, DEMO_LABEL, has_api_key, is_demo, model_label
from .task import (
    AGENT_QUEUE,
    AGENT_TASK,
    agent_params,
    answer_question,
    register_agent,
    spawn_agent,
)
from .transcript import Entry, PendingQuestion, Transcript, load_transcript

PROG = "absurd-tui"
HELP = "spawn the LLM agent with a prompt; --follow runs it here and streams its transcript"
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
POLL_SECONDS = 0.25
MAX_RESULT_CHARS = 2000
FOLLOW_CLAIM_TIMEOUT = 60


class AgentCommandError(Exception):
    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Spawn the durable LLM agent (task 'agent') and print its task id. Every model "
        "turn and tool call is a checkpoint, so a crash resumes where it stopped. The model "
        f"defaults to Claude ({API_KEY_ENV} set) or the offline demo ({DEMO_LABEL})."
    )
    parser.add_argument("prompt", metavar="PROMPT", help="what to ask the agent")
    parser.add_argument(
        "--model",
        "-m",
        metavar="M",
        help="'demo' (offline, scripted) or a Claude model such as claude-haiku-4-5 "
        f"(default: claude-haiku-4-5 when {API_KEY_ENV} is set, else demo)",
    )
    parser.add_argument(
        "--max-iterations",
        "-n",
        type=_iterations,
        metavar="N",
        help="stop after N model turns (default: 20)",
    )
    parser.add_argument("--system", metavar="TEXT", help="a system prompt for the model")
    parser.add_argument(
        "--queue",
        "-q",
        default=AGENT_QUEUE,
        metavar="Q",
        help="queue to spawn on (default: %(default)s; workers must serve it with the agent registered)",
    )
    parser.add_argument(
        "--tasks",
        "-t",
        action="append",
        default=[],
        metavar="MODULE",
        help="with --follow: import a module (or .py file) that registers tools or tasks; repeatable",
    )
    parser.add_argument(
        "--follow",
        "-f",
        action="store_true",
        help="run a worker for the queue in this process and stream the agent's transcript "
        "until it ends, answering its questions from standard input (the worker also runs "
        "other tasks waiting in that queue)",
    )


def add_agent_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("agent", help=HELP)
    configure(parser)
    return parser


def run_agent_command(args: argparse.Namespace, settings: Settings) -> int:
    """Run the command with its own database handle; errors become one line on stderr."""
    from ..db import DatabaseError, open_database

    try:
        _check_args(args)
        database = open_database(settings)
        return _run(args, database, sys.stdin, sys.stdout)
    except (AgentCommandError, DatabaseError) as exc:
        print(f"{PROG}: {_plain(str(exc))}", file=sys.stderr)
        return getattr(exc, "code", EXIT_USAGE)


def run(args: argparse.Namespace, session: Any) -> int:
    """The ``Command.run`` form for ``absurd_tui/cli.py``: uses the session's database."""
    from ..cli import CliError

    try:
        _check_args(args)
        return _run(args, session.database(), sys.stdin, sys.stdout)
    except AgentCommandError as exc:
        raise CliError(str(exc), exc.code) from exc


def _iterations(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= value <= MAX_ITERATIONS_LIMIT:
        raise argparse.ArgumentTypeError(f"must be from 1 to {MAX_ITERATIONS_LIMIT}")
    return value


def _check_args(args: argparse.Namespace) -> None:
    if not args.prompt.strip():
        raise AgentCommandError("The prompt is empty: say what the agent should do.")
    if args.model is not None and not args.model.strip():
        raise AgentCommandError("--model is empty: give 'demo' or a Claude model name.")
    if args.follow and args.model and not is_demo(args.model) and not has_api_key():
        raise AgentCommandError(
            f"The model {args.model!r} needs {API_KEY_ENV}, which is not set here, and --follow "
            "runs the agent in this process. Set it, or use --model demo."
        )
    if args.tasks and not args.follow:
        raise AgentCommandError(
            "--tasks only applies with --follow (it loads tools into this process's worker)."
        )


def _run(args: argparse.Namespace, database: Any, stdin: TextIO, stdout: TextIO) -> int:
    from ..db import reads

    if args.tasks:
        from ..sdk.errors import TaskModuleError
        from ..sdk.registry import load_task_modules

        try:
            load_task_modules(args.tasks)
        except TaskModuleError as exc:
            raise AgentCommandError(str(exc)) from exc
    with database.connect() as conn:
        if args.queue != AGENT_QUEUE and args.queue not in reads.queue_names(conn):
            raise AgentCommandError(
                f"Unknown queue {args.queue!r}. Create it with: {PROG} queue create {_shell(args.queue)}"
            )
        try:
            params = agent_params(
                args.prompt,
                model=args.model,
                max_iterations=args.max_iterations,
                system=args.system,
            )
            task_id = spawn_agent(conn, params.pop("prompt"), queue=args.queue, **params)
        except ValueError as exc:
            # Bad params or queue name: refused before anything was written.
            raise AgentCommandError(str(exc)) from exc
    print(task_id, file=stdout, flush=True)
    model = params.get("model")
    if not args.follow:
        print(
            f"{PROG}: spawned agent on queue {args.queue!r} with model {model_label(model)}; "
            f"watch it in the console, or: {PROG} show {task_id}",
            file=sys.stderr,
        )
        if args.queue != AGENT_QUEUE:
            print(
                f"{PROG}: note: workers on {args.queue!r} need the agent registered for that queue, "
                f"e.g. a --tasks module calling absurd_tui.agent.register_agent(queue={args.queue!r}).",
                file=sys.stderr,
            )
        if not is_demo(model) and not has_api_key():
            print(
                f"{PROG}: note: {API_KEY_ENV} is not set here; the worker that runs it needs it.",
                file=sys.stderr,
            )
        return EXIT_OK
    return follow(database, args.queue, task_id, stdin=stdin, stdout=stdout)


def follow(
    database: Any,
    queue: str,
    task_id: str,
    *,
    stdin: TextIO,
    stdout: TextIO,
    concurrency: int = 1,
    claim_timeout: int = FOLLOW_CLAIM_TIMEOUT,
    poll_seconds: float = POLL_SECONDS,
    on_status: Callable[[Any], None] | None = None,
) -> int:
    """Run the agent on embedded workers and stream its transcript until it ends."""
    from ..runtime import WorkerPool
    from ..sdk.registry import TaskRegistry

    registry = TaskRegistry()
    register_agent(registry, queue=queue)
    pool = WorkerPool(
        database.dsn,
        registry=registry,
        queues=(queue,),
        concurrency=concurrency,
        claim_timeout=claim_timeout,
        on_status=on_status,
    )
    printer = TranscriptPrinter(stdout)
    pool.start()
    try:
        return _follow(database, queue, task_id, printer, stdin, stdout, poll_seconds)
    except KeyboardInterrupt:
        print(
            f"\nStopped following. The agent is not lost: any worker serving {queue!r} resumes it "
            f"from its last checkpoint (this one's lease ends within {claim_timeout} s).",
            file=sys.stderr,
        )
        raise
    finally:
        pool.stop(timeout=5)


def _follow(
    database: Any,
    queue: str,
    task_id: str,
    printer: TranscriptPrinter,
    stdin: TextIO,
    stdout: TextIO,
    poll_seconds: float,
) -> int:
    answered: set[str] = set()
    with database.connect() as conn:
        while True:
            transcript = load_transcript(conn, queue, task_id)
            if transcript is None:
                raise AgentCommandError(
                    f"The task {task_id} disappeared from queue {queue!r}.", EXIT_FAILED
                )
            printer.show(transcript)
            if transcript.finished:
                return EXIT_OK if transcript.state == "completed" else EXIT_FAILED
            question = transcript.pending_question
            if question is not None and question.event_name not in answered:
                answer = _ask(question, stdin, stdout)
                if answer is None:
                    print(
                        "\nStandard input closed: the agent keeps waiting for an answer. Give it later "
                        f"in the console, or with: {PROG} emit {_shell(question.event_name)} "
                        f'--queue {_shell(queue)} --payload \'{{"answer": "..."}}\'',
                        file=stdout,
                        flush=True,
                    )
                    return EXIT_FAILED
                answer_question(conn, queue, question.event_name, answer)
                answered.add(question.event_name)
                continue
            # Checkpoint writes send no notification; a poll is one indexed query.
            time.sleep(poll_seconds)


def _ask(question: PendingQuestion, stdin: TextIO, stdout: TextIO) -> str | None:
    while True:
        print("Your answer> ", end="", file=stdout, flush=True)
        line = stdin.readline()
        if not line:
            return None
        answer = line.rstrip("\r\n")
        if not _is_terminal(stdin):
            # Piped input is not echoed: show what was read so the log reads naturally.
            print(_plain(answer), file=stdout, flush=True)
        if answer.strip():
            return answer
        print("(type an answer and press Enter)", file=stdout, flush=True)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class TranscriptPrinter:
    """Prints each transcript entry once, as plain text, in order.

    Stable entries are printed when first seen; the trailing transient one (work in
    progress, a wait, a sleep) only when it changes, so a long wait prints one line.
    """

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.printed = 0
        self.header_done = False
        self.last_transient: tuple[str, str] | None = None

    def show(self, transcript: Transcript) -> None:
        if not self.header_done:
            self._write(
                f"Agent task {transcript.task_id} on queue {transcript.queue}, model {transcript.model_label}"
            )
            self.header_done = True
        stable = transcript.stable_entries
        for entry in stable[self.printed :]:
            self._write(format_entry(entry))
        self.printed = max(self.printed, len(stable))
        trailing = transcript.entries[len(stable) :]
        if trailing:
            entry = trailing[0]
            marker = (entry.key, entry.text)
            if marker != self.last_transient:
                self._write(format_entry(entry))
                self.last_transient = marker
        if transcript.finished and transcript.state == "completed":
            usage = transcript.usage
            self._write(
                f"-- done in {transcript.iterations} iteration(s); tokens: {usage.input_tokens} in, "
                f"{usage.output_tokens} out"
            )

    def _write(self, text: str) -> None:
        print(text, file=self.out, flush=True)


def format_entry(entry: Entry) -> str:
    """One transcript entry as terminal-safe plain text."""
    text = _plain(entry.text)
    if entry.kind == "prompt":
        return _block("You: ", text)
    if entry.kind == "assistant":
        return _block("Agent: ", text)
    if entry.kind == "tool_call":
        return _block("  -> ", text)
    if entry.kind == "tool_result":
        if len(text) > MAX_RESULT_CHARS:
            text = text[:MAX_RESULT_CHARS] + f"... ({len(text) - MAX_RESULT_CHARS} more characters)"
        return _block("  <- error: " if entry.is_error else "  <- ", text)
    if entry.kind == "waiting_human":
        return _block("  ? The agent asks: ", text)
    if entry.kind == "sleeping":
        until = f" (until {entry.until:%H:%M:%S %Z})" if entry.until else ""
        return _block("  .. ", text + until)
    if entry.kind == "running":
        return _block("  .. ", text)
    if entry.kind == "final":
        return _block("Answer: ", text)
    return _block("!! ", text)


def _block(prefix: str, text: str) -> str:
    lines = text.split("\n") or [""]
    pad = " " * len(prefix)
    return "\n".join([prefix + lines[0]] + [pad + line for line in lines[1:]])


def _plain(text: str) -> str:
    from ..cli import plain

    return plain(text, multiline=True)


def _shell(text: str) -> str:
    from ..cli import shell_word

    return shell_word(text)


ARTIFACTS_HELP = "list the files an agent task produced (its /output), or save them with --out"


def configure_artifacts(parser: argparse.ArgumentParser) -> None:
    """``absurd-tui artifacts TASK [--out DIR] [--json]``; the logic is ``artifacts.py``."""
    from ..cli import add_json_option, add_task_id_argument

    parser.description = (
        "The files an agent task's code left in /output: listed, or written under DIR with "
        "--out (by their path inside /output). A file already there with other content "
        "stops the export before anything is written."
    )
    add_task_id_argument(parser)
    parser.add_argument("--out", "-o", metavar="DIR", help="write the files under DIR")
    add_json_option(parser)


def run_artifacts(args: argparse.Namespace, session: Any) -> int:
    from pathlib import Path

    from ..cli import CliError, print_json, table, usage_error
    from .artifacts import ExportError, export, load_contents

    ref = session.find_task(args.task_id, args.queue)
    conn = session.connection()
    transcript = load_transcript(conn, ref.queue, ref.task_id)
    if transcript is None:
        raise usage_error(
            f"Task {ref.task_id} disappeared (its queue was dropped or it was cleaned up)."
        )
    artifacts = transcript.artifacts
    if args.out:
        contents = load_contents(conn, ref.queue, ref.task_id, [a.sha256 for a in artifacts])
        try:
            written = export(artifacts, contents, Path(args.out))
        except (ExportError, OSError) as exc:
            raise CliError(str(exc), EXIT_FAILED) from exc
        for path in written:
            print(_plain(str(path)))
        if not written:
            print(f"{PROG}: task {ref.task_id} has no files in /output", file=sys.stderr)
        return EXIT_OK
    if args.json:
        print_json([artifact.to_json() for artifact in artifacts])
        return EXIT_OK
    if not artifacts:
        print(f"{PROG}: task {ref.task_id} has no files in /output", file=sys.stderr)
        return EXIT_OK
    print(
        table(
            ["PATH", "SIZE", "TYPE", "SHA256"],
            [[_plain(a.path), f"{a.size:,}", a.media_type, a.sha256[:16]] for a in artifacts],
        )
    )
    return EXIT_OK


__all__ = [
    "AGENT_TASK",
    "ARTIFACTS_HELP",
    "HELP",
    "TranscriptPrinter",
    "add_agent_parser",
    "configure",
    "configure_artifacts",
    "follow",
    "format_entry",
    "run",
    "run_agent_command",
    "run_artifacts",
]
