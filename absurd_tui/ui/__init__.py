"""The Textual console. ``run_tui`` is what ``absurd-tui`` (no subcommand) runs."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Sequence
from typing import Any

from ..config import DEFAULT_QUEUE, Settings

__all__ = ["run_tui", "worker_queues"]

EMBEDDED_WORKERS_SWITCH_INTERVAL = 0.0005
"""Seconds (sys.setswitchinterval) while embedded workers share the process with the UI."""


def worker_queues(queues: Sequence[str] | None = None) -> list[str]:
    """The queues the embedded workers serve: ``queues`` if given, else every queue a
    registered task is on (the built-in agent's ``agents`` among them) and default."""
    from ..sdk.registry import default_registry

    return list(queues or sorted({*default_registry.queues(), DEFAULT_QUEUE}))


def run_tui(
    settings: Settings,
    *,
    workers: int = 2,
    queues: Sequence[str] | None = None,
    task_modules: Sequence[str] = (),
    no_workers: bool = False,
    refresh: float = 1.0,
) -> int:
    """Open the database, start embedded workers, run the console; the exit code.

    Errors a user can fix (no schema, a task module that does not import) are printed
    as one paragraph to stderr with exit code 1, before the screen is taken over. A
    server given by DSN that cannot be reached yet is not one of them: the console opens
    showing "disconnected, retrying", and its workers start once the server answers.
    """
    from ..agent import register_agent
    from ..agent.task import serves_agents
    from ..db import DatabaseError, DatabaseUnavailable, open_database
    from ..db import dsn as dsn_text
    from ..sdk.errors import TaskModuleError
    from ..sdk.registry import default_registry, load_task_modules
    from .app import AbsurdApp
    from .logbook import Logbook, captured
    from .source import LiveSource

    # The agent is built in: the embedded workers serve its queue (agents) unless --queue
    # says otherwise. Idempotent, and a task module that moved it to its own queue wins.
    register_agent()
    serve = worker_queues(queues) if not no_workers else []
    try:
        load_task_modules(list(task_modules))
        database = open_database(settings)
    except DatabaseUnavailable as exc:
        if settings.dsn is None:
            print(f"absurd-tui: {exc}", file=sys.stderr)
            return 1
        dsn, label, prepared = settings.dsn, dsn_text.describe(settings.dsn), False
    except (DatabaseError, TaskModuleError) as exc:
        print(f"absurd-tui: {exc}", file=sys.stderr)
        return 1
    else:
        dsn, label, prepared = database.dsn, database.label, True
        try:
            _prepare_queues(database.dsn, serve, explicit=bool(queues))
        except DatabaseError as exc:
            print(
                f"absurd-tui: cannot prepare the queues {', '.join(serve)}: {exc}", file=sys.stderr
            )
            return 1

    source = LiveSource(dsn, label, registry=default_registry)
    logbook = Logbook()
    app = AbsurdApp(
        source,
        worker_queues=serve,
        refresh=refresh,
        warm_sandbox=not no_workers and serves_agents(serve, default_registry),
        logbook=logbook,
        data_dir=settings.data_dir,
    )
    pool = None
    if not no_workers:
        from ..runtime import WorkerPool

        # The UI thread renders for milliseconds at a time, and a worker thread back from
        # each database round trip waits for the GIL until the switch interval (5 ms by
        # default) makes the UI yield: that wait, not the work, set the embedded workers'
        # pace. A short interval lets them in at once; the UI barely notices.
        sys.setswitchinterval(EMBEDDED_WORKERS_SWITCH_INTERVAL)
        # Its threads wait for the server and for their queues by themselves.
        pool = WorkerPool(
            dsn,
            registry=default_registry,
            queues=tuple(serve),
            concurrency=workers,
            poll_interval=settings.poll_interval,
            on_status=app.on_worker_status,
        )
        app.worker_pool = pool
    stop = threading.Event()
    if not prepared:
        threading.Thread(
            target=_prepare_when_reachable,
            args=(settings, serve, bool(queues), app, stop),
            name="absurd-tui console start-up",
            daemon=True,
        ).start()
    try:
        # The terminal is the console's while it runs: log lines go to the log panel.
        with captured(logbook):
            app.run()
    finally:
        stop.set()
        if pool is not None:
            # Tasks still running after the grace period are handed back to their queue
            # (same attempt, resumed from their checkpoints by the next worker).
            pool.stop(timeout=5)
        source.close()
    return app.return_code or 0


def _prepare_queues(dsn: str, serve: Sequence[str], *, explicit: bool) -> None:
    """The queues the embedded workers were asked to serve must exist; creating one is
    idempotent. Unasked, the agent's queue waits for the first agent to create it."""
    from .. import ops
    from ..agent import queues_to_create
    from ..db import connect

    if not serve:
        return
    with connect(dsn) as conn:
        for name in serve if explicit else queues_to_create(serve):
            ops.create_queue(conn, name)


# The console's screen shows the outage; these messages must not reach the terminal.
_startup_log = logging.getLogger("absurd_tui.ui.startup")
_startup_log.propagate = False
_startup_log.addHandler(logging.NullHandler())


def _prepare_when_reachable(
    settings: Settings, serve: Sequence[str], explicit: bool, app: Any, stop: threading.Event
) -> None:
    """Started against a server that was down: wait for it, then check its schema and
    create the workers' queues; a problem found then is shown in the console."""
    from ..db import DatabaseError
    from ..db.wait import open_database_waiting

    try:
        database = open_database_waiting(settings, stop=stop, logger=_startup_log)
        if database is not None:
            _prepare_queues(database.dsn, serve, explicit=explicit)
    except DatabaseError as exc:
        while not stop.is_set():
            try:
                app.call_from_thread(
                    app.notify,
                    str(exc),
                    title="Database",
                    severity="error",
                    timeout=60,
                    markup=False,
                )
                return
            except RuntimeError:
                # The app is not running yet: try again in a moment.
                stop.wait(0.2)
