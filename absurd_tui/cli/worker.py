"""``worker``: headless worker threads until SIGINT or SIGTERM, then a graceful stop."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from typing import Any

from .. import ops
from ..config import DEFAULT_QUEUE
from .inputs import non_negative_float, positive_int
from .session import EXIT_OK, Session, usage_error

worker_log = logging.getLogger("absurd_tui.worker")


def configure(parser: argparse.ArgumentParser) -> None:
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
        default=30,
        metavar="S",
        help="lease in seconds, renewed while a task runs; the tasks of a worker that "
        "dies are reclaimed this long after its last renewal (default: %(default)s)",
    )
    parser.add_argument(
        "--connect-timeout",
        type=non_negative_float,
        default=None,
        metavar="S",
        help="if the database cannot be reached at start, give up after S seconds (exit 2; "
        "0: at the first failure); by default wait for it, retrying with backoff",
    )
    parser.add_argument(
        "--grace",
        type=non_negative_float,
        default=30.0,
        metavar="S",
        help="on SIGINT/SIGTERM, wait this long for running tasks to finish (default: %(default)s)",
    )


def run(args: argparse.Namespace, session: Session) -> int:
    from ..agent.sandbox import start_warm_up
    from ..agent.task import queues_to_create, serves_agents
    from ..runtime import WorkerPool
    from ..sdk.errors import TaskModuleError
    from ..sdk.registry import default_registry, load_task_modules

    register_builtin_tasks()
    try:
        load_task_modules(args.tasks)
    except TaskModuleError as exc:
        raise usage_error(str(exc)) from exc
    database = session.database_waiting(args.connect_timeout)
    if args.queues:
        queues = list(dict.fromkeys(args.queues))
        conn = session.connection()
        for queue in queues:
            ops.resolve_queue(conn, queue)
    else:
        # The queues of the tasks this worker knows, created if missing as the console
        # does for its own workers (creating a queue is idempotent); the agent's queue
        # only appears with the first agent, and is served from then on.
        queues = list(dict.fromkeys([DEFAULT_QUEUE, *default_registry.queues()]))
        conn = session.connection()
        for queue in queues_to_create(queues):
            ops.create_queue(conn, queue)
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
        if serves_agents(queues, default_registry):
            # A first start on this machine compiles the sandbox's runtime (minutes):
            # in the background, said in the log, so the first call is not a mystery.
            start_warm_up(lambda status: worker_log.info("Code interpreter: %s", status.message))
        while not stop.wait(1.0):
            pass
        worker_log.info(
            "%s: claiming no more; giving %d running task(s) up to %g s to finish "
            "(signal again to hand them back at once)",
            signal.Signals(received[0]).name,
            reporter.busy(),
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
    from ..agent.task import register_agent

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
