"""The Textual console. ``run_tui`` is what ``absurd-tui`` (no subcommand) runs."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from ..config import DEFAULT_QUEUE, Settings

__all__ = ["run_tui", "worker_queues"]


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
    from ..agent import register_agent
    from ..db import DatabaseError, open_database
    from ..sdk.errors import TaskModuleError
    from ..sdk.registry import default_registry, load_task_modules
    from .app import AbsurdApp
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
        # The queues the embedded workers serve must exist; creating one is idempotent.
        try:
            with database.connect() as conn:
                for name in serve:
                    ops.create_queue(conn, name)
        except DatabaseError as exc:
            print(
                f"absurd-tui: cannot prepare the queues {', '.join(serve)}: {exc}", file=sys.stderr
            )
            return 1

    source = LiveSource(database.dsn, database.label, registry=default_registry)
    app = AbsurdApp(source, worker_queues=serve if not no_workers else (), refresh=refresh)
    pool = None
    if not no_workers:
        from ..runtime import WorkerPool

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
        app.run()
    finally:
        if pool is not None:
            # Unfinished tasks are left to their lease: another worker reclaims them.
            pool.stop(timeout=5)
        source.close()
    return app.return_code or 0
