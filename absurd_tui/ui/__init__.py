"""The Textual console. ``run_tui`` is what ``absurd-tui`` (no subcommand) runs."""

from __future__ import annotations

import sys
from collections.abc import Sequence

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

    Errors a user can fix (no database, no schema, a task module that does not
    import) are printed as one paragraph to stderr with exit code 1, before the
    screen is taken over.
    """
    from .. import ops
    from ..agent import queues_to_create, register_agent
    from ..db import DatabaseError, open_database
    from ..sdk.errors import TaskModuleError
    from ..sdk.registry import default_registry, load_task_modules
    from .app import AbsurdApp
    from .logbook import Logbook, captured
    from .source import LiveSource

    # The agent is built in: the embedded workers serve its queue (agents) unless --queue
    # says otherwise. Idempotent, and a task module that moved it to its own queue wins.
    register_agent()
    try:
        load_task_modules(list(task_modules))
        database = open_database(settings)
    except (DatabaseError, TaskModuleError) as exc:
        print(f"absurd-tui: {exc}", file=sys.stderr)
        return 1

    serve = worker_queues(queues)
    if not no_workers:
        # The queues the embedded workers were asked to serve must exist; creating one is
        # idempotent. Unasked, the agent's queue waits for the first agent to create it.
        try:
            with database.connect() as conn:
                for name in serve if queues else queues_to_create(serve):
                    ops.create_queue(conn, name)
        except DatabaseError as exc:
            print(
                f"absurd-tui: cannot prepare the queues {', '.join(serve)}: {exc}", file=sys.stderr
            )
            return 1

    source = LiveSource(database.dsn, database.label, registry=default_registry)
    from ..agent.task import serves_agents

    logbook = Logbook()
    app = AbsurdApp(
        source,
        worker_queues=serve if not no_workers else (),
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

        pool = WorkerPool(
            database.dsn,
            registry=default_registry,
            queues=tuple(serve),
            concurrency=workers,
            poll_interval=settings.poll_interval,
            on_status=app.on_worker_status,
        )
        app.worker_pool = pool
    try:
        # The terminal is the console's while it runs: log lines go to the log panel.
        with captured(logbook):
            app.run()
    finally:
        if pool is not None:
            # Tasks still running after the grace period are handed back to their queue
            # (same attempt, resumed from their checkpoints by the next worker).
            pool.stop(timeout=5)
        source.close()
    return app.return_code or 0
