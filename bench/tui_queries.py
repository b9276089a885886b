"""How long each query behind a TUI refresh takes on a queue of 1,000,000 tasks.

    python bench/tui_queries.py [--dsn DSN] [--tasks 1000000] [--repeat 15]

Without --dsn it starts a throwaway embedded PostgreSQL in a temporary directory.
It creates a database ``absurd_bench_tui`` (dropped and re-created), installs the
schema, seeds one queue with the given number of tasks in realistic proportions
(mostly completed, some failed and cancelled, a few thousand live ones with runs,
leases, event waits and checkpoints), runs ANALYZE as autovacuum would, then times
each read that a refresh of the console performs: median and worst of --repeat runs,
measured around the call on the client over a local socket (so database time plus a
round trip). The goal is under 50 ms for each.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from absurd_tui.db import reads, schema
from absurd_tui.db.reads import TaskFilter
from absurd_tui.ui.source import LiveSource

QUEUE = "bench"
DBNAME = "absurd_bench_tui"
GOAL_MS = 50.0

# Share of each state among the seeded tasks (the rest are completed).
FAILED = 0.015
CANCELLED = 0.003
PENDING = 1_000
RUNNING = 500
SLEEPING_TIMER = 250
SLEEPING_EVENT = 250
CHECKPOINTED = 100_000
"""The newest tasks get three checkpoints each (older ones were cleaned up)."""


def uuid7_sql(ms: str, n: str, salt: int) -> str:
    """SQL for a UUIDv7-shaped id: ``ms`` milliseconds, then bits from ``n`` and salt."""
    return (
        f"(lpad(to_hex({ms}), 12, '0') || '7' || lpad(to_hex(({n} * 31 + {salt}) % 4096), 3, '0')"
        f" || '8' || lpad(to_hex(({n} * 7919 + {salt}) % 4096), 3, '0')"
        f" || lpad(to_hex({n} + {salt} * 100000000000::bigint), 12, '0'))::uuid"
    )


def seed(conn: psycopg.Connection, total: int) -> None:
    t = sql.Identifier("absurd", f"t_{QUEUE}")
    r = sql.Identifier("absurd", f"r_{QUEUE}")
    c = sql.Identifier("absurd", f"c_{QUEUE}")
    w = sql.Identifier("absurd", f"w_{QUEUE}")
    e = sql.Identifier("absurd", f"e_{QUEUE}")
    conn.execute("SELECT absurd.create_queue(%s)", (QUEUE,))
    live = PENDING + RUNNING + SLEEPING_TIMER + SLEEPING_EVENT
    # Task g is g milliseconds after a start one million seconds ago; the newest are live.
    state_of = f"""CASE
        WHEN g > {total - PENDING} THEN 'pending'
        WHEN g > {total - PENDING - RUNNING} THEN 'running'
        WHEN g > {total - live} THEN 'sleeping'
        WHEN g % 1000 < {int(FAILED * 1000)} THEN 'failed'
        WHEN g % 1000 < {int((FAILED + CANCELLED) * 1000)} THEN 'cancelled'
        ELSE 'completed' END"""
    start = time.perf_counter()
    conn.execute(
        sql.SQL(
            """
            CREATE TEMP TABLE seed AS
            SELECT g, ms, {task_id} AS task_id, {run_id} AS run_id, {state} AS state,
                   to_timestamp(ms / 1000.0) AS at
            FROM (SELECT g, (extract(epoch FROM now()) * 1000)::bigint - 1000000000 + g * 900 AS ms
                  FROM generate_series(1::bigint, {total}) AS g) AS s
            """.replace("{total}", str(int(total)))
            .replace("{task_id}", uuid7_sql("ms", "g", 1))
            .replace("{run_id}", uuid7_sql("ms", "g", 2))
            .replace("{state}", state_of)
        )
    )
    conn.execute(
        sql.SQL(
            """
            INSERT INTO {t} (task_id, task_name, params, headers, max_attempts, enqueue_at,
                             first_started_at, state, attempts, last_attempt_run,
                             completed_payload, cancelled_at)
            SELECT task_id, (ARRAY['send-email', 'resize-image', 'charge-card', 'agent'])[g % 4 + 1],
                   jsonb_build_object('n', g), NULL, 5, at,
                   CASE WHEN state = 'pending' THEN NULL ELSE at END, state, 1, run_id,
                   CASE WHEN state = 'completed' THEN jsonb_build_object('ok', g) END,
                   CASE WHEN state = 'cancelled' THEN at END
            FROM seed
            """
        ).format(t=t)
    )
    conn.execute(
        sql.SQL(
            """
            INSERT INTO {r} (run_id, task_id, attempt, state, claimed_by, claim_expires_at,
                             available_at, wake_event, started_at, completed_at, failed_at,
                             result, failure_reason, created_at)
            SELECT run_id, task_id, 1, state,
                   CASE WHEN state IN ('running', 'completed', 'failed') THEN 'bench-host:' || (g % 8) END,
                   CASE WHEN state = 'running' THEN now() + interval '60 seconds' END,
                   CASE WHEN state = 'sleeping' AND g % 2 = 0 THEN 'infinity'
                        WHEN state = 'sleeping' THEN now() + interval '1 hour'
                        ELSE at END,
                   CASE WHEN state = 'sleeping' AND g % 2 = 0 THEN 'event-' || g END,
                   CASE WHEN state <> 'pending' THEN at END,
                   CASE WHEN state = 'completed' THEN at + interval '1 second' END,
                   CASE WHEN state = 'failed' THEN at + interval '1 second' END,
                   CASE WHEN state = 'completed' THEN jsonb_build_object('ok', g) END,
                   CASE WHEN state = 'failed' THEN '{{"name": "Boom", "message": "failed"}}'::jsonb END,
                   at
            FROM seed
            """
        ).format(r=r)
    )
    conn.execute(
        sql.SQL(
            """
            INSERT INTO {w} (run_id, step_name, task_id, event_name, timeout_at, created_at)
            SELECT run_id, 'wait', task_id, 'event-' || g, NULL, at FROM seed
            WHERE state = 'sleeping' AND g % 2 = 0
            """
        ).format(w=w)
    )
    conn.execute(
        sql.SQL(
            """
            INSERT INTO {c} (task_id, checkpoint_name, state, status, owner_run_id, updated_at)
            SELECT task_id, name, jsonb_build_object('step', name, 'g', g), 'committed', run_id,
                   at + (k || ' seconds')::interval
            FROM seed, LATERAL (VALUES (1, 'fetch'), (2, 'iteration'), (3, 'iteration#2')) AS v(k, name)
            WHERE g > %s AND state <> 'pending'
            """
        ).format(c=c),
        (total - CHECKPOINTED,),
    )
    conn.execute(
        sql.SQL(
            """
            INSERT INTO {e} (event_name, payload, emitted_at)
            SELECT 'done-' || g, jsonb_build_object('g', g), now() - (g || ' seconds')::interval
            FROM generate_series(1, 1000) AS g
            """
        ).format(e=e)
    )
    conn.execute("DROP TABLE seed")
    for table in ("t", "r", "c", "w", "e"):
        conn.execute(
            sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier("absurd", f"{table}_{QUEUE}"))
        )
    print(f"seeded {total:,} tasks in {time.perf_counter() - start:.1f} s")


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    fn()  # warm the cache and the plan, as a running console has
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples), max(samples)


def run(dsn: str, total: int, repeat: int, keep: bool = False) -> int:
    server = conninfo_to_dict(dsn)
    with psycopg.connect(dsn, autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DBNAME,)).fetchone()
        fresh = not (keep and exists)
        if fresh:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DBNAME))
            )
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DBNAME)))
    bench_dsn = make_conninfo(**{**server, "dbname": DBNAME})
    failed = True
    try:
        result = _measure(bench_dsn, fresh, total, repeat)
        failed = False
        return result
    finally:
        # A half-seeded database is no use to a later --keep run either.
        if not keep or (failed and fresh):
            with psycopg.connect(dsn, autocommit=True) as admin:
                admin.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(DBNAME)
                    )
                )


def _measure(bench_dsn: str, fresh: bool, total: int, repeat: int) -> int:
    with psycopg.connect(bench_dsn, autocommit=True) as conn:
        if fresh:
            schema.install(conn)
            seed(conn, total)
        else:
            print(f"reusing the seeded database {DBNAME} (--keep)")
        page = reads.list_tasks(conn, TaskFilter(queue=QUEUE), limit=100)
        deep = reads.list_tasks(
            conn, TaskFilter(queue=QUEUE), limit=100, after=page.rows[50].task_id
        )
        some = deep.rows[10]
        waiting = reads.pending_waits(conn)[0]
        summaries = reads.queue_summaries(conn)

        queries: list[tuple[str, Callable[[], object]]] = [
            (
                "queue summaries (counts by state, claimable, lag)",
                lambda: reads.queue_summaries(conn),
            ),
            (
                "task page, newest 100 (count from summaries)",
                lambda: reads.list_tasks(conn, TaskFilter(queue=QUEUE), 100, summaries=summaries),
            ),
            (
                "task page, all queues",
                lambda: reads.list_tasks(conn, TaskFilter(), 100, summaries=summaries),
            ),
            (
                "task page 2 (keyset, after a key)",
                lambda: reads.list_tasks(
                    conn, TaskFilter(queue=QUEUE), 100, after=page.next_after, summaries=summaries
                ),
            ),
        ]
        for state in reads.STATES:
            queries.append(
                (
                    f"task page, state {state}",
                    lambda s=state: reads.list_tasks(
                        conn, TaskFilter(queue=QUEUE, state=s), 100, summaries=summaries
                    ),
                )
            )
        queries += [
            (
                "task page, name prefix 'charge' (no count)",
                lambda: reads.list_tasks(
                    conn, TaskFilter(queue=QUEUE, name="charge"), 100, count=False
                ),
            ),
            (
                "match count, name prefix 'charge' (capped, every 5 s)",
                lambda: reads.count_tasks(conn, TaskFilter(queue=QUEUE, name="charge")),
            ),
            (
                "task page, search by id prefix",
                lambda: reads.list_tasks(
                    conn, TaskFilter(queue=QUEUE, search=str(some.task_id)[:18]), 100, count=False
                ),
            ),
            (
                "task detail (runs, checkpoints, waits)",
                lambda: reads.task_detail(conn, QUEUE, some.task_id),
            ),
            ("pending waits (events view)", lambda: reads.pending_waits(conn)),
            ("emitted events (events view)", lambda: reads.emitted_events(conn)),
            ("workers seen (workers view)", lambda: reads.workers_seen(conn)),
            (
                "find task by id prefix (CLI show)",
                lambda: reads.find_task(conn, str(waiting.task_id)[:20]),
            ),
        ]
        source = LiveSource(bench_dsn, "bench")
        short = reads.short_id(some.task_id)
        queries += [
            (
                "tasks refresh as the console does it (summaries + page)",
                lambda: source.tasks(TaskFilter(), 100, None, True),
            ),
            (
                "tasks refresh, search by a short id (resolved once)",
                lambda: source.tasks(TaskFilter(queue=QUEUE, search=short), 100, None, True),
            ),
        ]
        slow_searches: list[tuple[str, Callable[[], object]]] = [
            (
                "resolving a short id (id tail; no index serves it)",
                lambda: reads.tasks_with_id_tail(conn, short, QUEUE),
            ),
            ("find task by id tail (CLI show)", lambda: reads.find_task(conn, short)),
            (
                "task page, rare name prefix (no index on task_name)",
                lambda: reads.list_tasks(
                    conn, TaskFilter(queue=QUEUE, name="no-such-task"), 100, count=False
                ),
            ),
        ]
        print(f"\n{'query':<60}{'median ms':>11}{'max ms':>10}")
        over = 0
        for name, fn in queries:
            median, worst = timed(fn, repeat)
            flag = "" if median < GOAL_MS else "  over goal"
            over += median >= GOAL_MS
            print(f"{name:<60}{median:>11.2f}{worst:>10.2f}{flag}")
        print("\nnot part of a periodic refresh:")
        for name, fn in slow_searches:
            median, worst = timed(fn, 3)
            print(f"{name:<60}{median:>11.2f}{worst:>10.2f}")
    print(
        f"\n{len(queries) - over} of {len(queries)} refresh queries under {GOAL_MS:.0f} ms (median)"
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dsn", help="a server's maintenance DSN (default: a throwaway embedded server)"
    )
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the seeded database, and reuse it if it exists (with --dsn)",
    )
    args = parser.parse_args()
    if args.dsn:
        return run(args.dsn, args.tasks, args.repeat, args.keep)
    from absurd_tui.db import embedded

    tmp = Path(tempfile.mkdtemp(prefix="absurd-tui-bench-"))
    server = embedded.get_server(tmp / "pgdata", cleanup_mode="delete")
    try:
        return run(server.get_uri("postgres"), args.tasks, args.repeat)
    finally:
        server.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
