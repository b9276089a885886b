"""``agent "PROMPT"``: spawn the LLM agent; with ``--follow``, run it here and stream
its transcript, answering its questions from standard input.

Without ``--follow`` it prints the task id and leaves the work to workers serving the
queue (the console's, or ``absurd-tui worker``). With ``--follow`` it starts its own
worker thread for the queue, prints each part of the conversation as it is
checkpointed, asks on the terminal when the agent calls ``ask_human``, and exits when
the task ends: 0 if it completed, 1 if it failed or was cancelled (or stdin closed
while the agent waits, which leaves it waiting), 2 for bad input.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

from .. import ops
from ..agent.conversation import MAX_ITERATIONS_LIMIT
from ..agent.models import (
    API_KEY_ENV,
    DEMO_LABEL,
    default_model_name,
    has_api_key,
    is_demo,
    model_label,
)
from ..agent.task import AGENT_QUEUE, register_agent
from ..agent.transcript import Entry, PendingQuestion, Transcript, load_transcript
from ..text import shell_word
from .inputs import whole_number_in
from .output import plain
from .session import EXIT_FAILED, EXIT_OK, PROG, CliError, Session, usage_error

if TYPE_CHECKING:
    from ..db import Database

HELP = "spawn the LLM agent with a prompt; --follow runs it here and streams its transcript"
POLL_SECONDS = 0.25
MAX_RESULT_CHARS = 2000
FOLLOW_CLAIM_TIMEOUT = 60


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
        type=whole_number_in(1, MAX_ITERATIONS_LIMIT),
        metavar="N",
        help="stop after N model turns (default: 20)",
    )
    parser.add_argument("--system", metavar="TEXT", help="a system prompt for the model")
    parser.add_argument(
        "--queue",
        "-q",
        metavar="Q",
        help=f"queue to spawn on (default: {AGENT_QUEUE}, created if missing; workers must "
        "serve it with the agent registered)",
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


def run(args: argparse.Namespace, session: Session) -> int:
    _check_args(args)
    if args.tasks:
        from ..sdk.errors import TaskModuleError
        from ..sdk.registry import load_task_modules

        try:
            load_task_modules(args.tasks)
        except TaskModuleError as exc:
            raise usage_error(str(exc)) from exc
    spawned = ops.spawn_agent(
        session.connection(),
        args.prompt,
        model=args.model,
        max_iterations=args.max_iterations,
        system=args.system,
        queue=args.queue,
    )
    queue, task_id = spawned.queue, str(spawned.task_id)
    print(task_id, flush=True)
    model = args.model or default_model_name()
    if not args.follow:
        print(
            f"{PROG}: spawned agent on queue {queue!r} with model {model_label(model)}; "
            f"watch it in the console, or: {PROG} show {task_id}",
            file=sys.stderr,
        )
        if not ops.is_agent_queue(queue):
            print(
                f"{PROG}: note: workers on {queue!r} need the agent registered for that queue, "
                f"e.g. a --tasks module calling absurd_tui.agent.register_agent(queue={queue!r}).",
                file=sys.stderr,
            )
        if not is_demo(model) and not has_api_key():
            print(
                f"{PROG}: note: {API_KEY_ENV} is not set here; the worker that runs it needs it.",
                file=sys.stderr,
            )
        return EXIT_OK
    return follow(session.database(), queue, task_id, stdin=sys.stdin, stdout=sys.stdout)


def _check_args(args: argparse.Namespace) -> None:
    if not args.prompt.strip():
        raise usage_error("The prompt is empty: say what the agent should do.")
    if args.model is not None and not args.model.strip():
        raise usage_error("--model is empty: give 'demo' or a Claude model name.")
    if args.follow and args.model and not is_demo(args.model) and not has_api_key():
        raise usage_error(
            f"The model {args.model!r} needs {API_KEY_ENV}, which is not set here, and --follow "
            "runs the agent in this process. Set it, or use --model demo."
        )
    if args.tasks and not args.follow:
        raise usage_error(
            "--tasks only applies with --follow (it loads tools into this process's worker)."
        )


def follow(
    database: Database,
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
    database: Database,
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
                raise CliError(f"The task {task_id} disappeared from queue {queue!r}.", EXIT_FAILED)
            printer.show(transcript)
            if transcript.finished:
                return EXIT_OK if transcript.state == "completed" else EXIT_FAILED
            question = transcript.pending_question
            if question is not None and question.event_name not in answered:
                answer = _ask(question, stdin, stdout)
                if answer is None:
                    print(
                        "\nStandard input closed: the agent keeps waiting for an answer. Give it later "
                        f"in the console, or with: {PROG} emit {shell_word(question.event_name)} "
                        f'--queue {shell_word(queue)} --payload \'{{"answer": "..."}}\'',
                        file=stdout,
                        flush=True,
                    )
                    return EXIT_FAILED
                ops.answer(conn, queue, question.event_name, answer)
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
            print(plain(answer, multiline=True), file=stdout, flush=True)
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
        # A sleep is listed as soon as the model asks for it, but its wake-up time only
        # once the sleep is recorded a moment later: wait for that, so it prints one line.
        if trailing and not (trailing[0].kind == "sleeping" and trailing[0].until is None):
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
    text = plain(entry.text, multiline=True)
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
