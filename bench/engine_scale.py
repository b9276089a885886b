"""How the engine's hot path scales with history.

Fills one queue with N finished tasks through the engine's own functions (spawn,
claim, checkpoint, complete), then measures from Python, over one autocommit
connection:

* an empty-queue ``claim_task`` poll (what an idle worker does all day), and
* one task life cycle: spawn_task + claim_task + set_task_checkpoint_state + complete_run,

and prints the medians, their ratio to N = 0, and EXPLAIN (ANALYZE, BUFFERS) of the
statements that used to scan the whole queue: the cancellation-policy sweep, the
lease-expiry sweep and the claim. Those statements come from absurd.engine_query(), the
same text claim_task executes.

    python bench/engine_scale.py                      # local server, N = 0, 100k, 1M
    python bench/engine_scale.py --sizes 0,10000      # quick run
    python bench/engine_scale.py --embedded           # private pgserver in a temp dir

With --dsn (default: the local server) a scratch database ``absurd_bench`` is created and
dropped afterwards (--keep leaves it). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "sql" / "absurd.sql"
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
BENCH_DB = "absurd_bench"
QUEUE = "bench"  # the queue that accumulates history
REFERENCE = "bench_empty"  # kept empty, measured alongside for a same-moment baseline
# Every task carries a cancellation policy, as with an SDK default_cancellation, so the
# policy sweep has something to look at; a finished task must still cost it nothing.
TASK_OPTIONS = json.dumps({"max_attempts": 3, "cancellation": {"max_duration": 86400}})

# One fill transaction: spawn a batch, claim it in one call, checkpoint and complete each.
# A psycopg sql.SQL template (so literal braces are doubled); DO blocks take no parameters.
FILL_BATCH_SQL = sql.SQL("""
DO $fill$
DECLARE
    v_claimed record;
BEGIN
    FOR i IN 1..{batch} LOOP
        PERFORM absurd.spawn_task({queue}, 'history', jsonb_build_object('i', i), {options}::jsonb);
    END LOOP;
    FOR v_claimed IN SELECT * FROM absurd.claim_task({queue}, 'filler', 0, {batch}) LOOP
        PERFORM absurd.set_task_checkpoint_state({queue}, v_claimed.task_id, 'step',
                                                 '{{"done": true}}'::jsonb, v_claimed.run_id, NULL);
        PERFORM absurd.complete_run({queue}, v_claimed.run_id, '{{"ok": true}}'::jsonb);
    END LOOP;
END
$fill$
""")

PLANNED = ("cancel_sweep", "lease_sweep", "claim")  # all run by claim_task
# {now} becomes the current time as a literal: the engine passes a value, which the
# planner can compare with an index; absurd.current_time() itself is volatile and could
# only be a filter.
PLAN_ARGS = {
    "cancel_sweep": "{now}",
    "lease_sweep": "{now}, 1",
    "claim": "{now}, 1",
}


def with_db(dsn: str, dbname: str) -> str:
    params = conninfo_to_dict(dsn)
    params["dbname"] = dbname
    return make_conninfo(**params)


def install(conn: psycopg.Connection) -> None:
    conn.execute(SCHEMA.read_text(encoding="utf-8"))
    conn.execute("SELECT absurd.create_queue(%s)", (QUEUE,))
    conn.execute("SELECT absurd.create_queue(%s)", (REFERENCE,))


def fill(dsn: str, have: int, want: int, batch: int, jobs: int) -> None:
    """Adds finished tasks until the queue holds `want`, in `jobs` parallel connections.

    Each batch spawns, claims and finishes its own tasks in one transaction, so parallel
    batches never see (or claim) each other's tasks.
    """
    started = time.monotonic()
    batches = [min(batch, want - start) for start in range(have, want, batch)]
    done = have
    lock = threading.Lock()

    def worker(sizes: list[int]) -> None:
        nonlocal done
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("SET synchronous_commit = off")
            for size in sizes:
                conn.execute(
                    FILL_BATCH_SQL.format(
                        batch=sql.Literal(size),
                        queue=sql.Literal(QUEUE),
                        options=sql.Literal(TASK_OPTIONS),
                    )
                )
                with lock:
                    done += size
                    rate = (done - have) / max(time.monotonic() - started, 1e-9)
                    print(
                        f"  filled {done:>9,} tasks ({rate:,.0f}/s)",
                        file=sys.stderr,
                        flush=True,
                    )

    threads = [threading.Thread(target=worker, args=(batches[i::jobs],)) for i in range(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if done != want:
        raise RuntimeError(f"fill stopped at {done:,} of {want:,} tasks (see the error above)")


def poll(conn: psycopg.Connection, queue: str) -> None:
    rows = conn.execute(
        "SELECT run_id FROM absurd.claim_task(%s, %s, %s, %s)", (queue, "bench", 30, 1)
    ).fetchall()
    assert rows == [], "the queue was expected to be empty"


def cycle(conn: psycopg.Connection, queue: str) -> None:
    task_id, _run_id, _attempt = conn.execute(
        "SELECT task_id, run_id, attempt FROM absurd.spawn_task(%s, %s, %s, %s)",
        (queue, "cycle", json.dumps({"n": 1}), TASK_OPTIONS),
    ).fetchone()
    claimed = conn.execute(
        "SELECT run_id, task_id FROM absurd.claim_task(%s, %s, %s, %s)",
        (queue, "bench", 30, 1),
    ).fetchone()
    assert claimed is not None and claimed[1] == task_id
    conn.execute(
        "SELECT absurd.set_task_checkpoint_state(%s, %s, %s, %s, %s, %s)",
        (queue, task_id, "step", json.dumps({"v": 1}), claimed[0], 30),
    )
    conn.execute("SELECT absurd.complete_run(%s, %s, %s)", (queue, claimed[0], json.dumps(1)))


def measure(conn: psycopg.Connection, samples: int) -> dict[tuple[str, str], float]:
    """Median ms of each operation on the empty reference queue and on the full queue.

    Samples alternate between the two queues one by one, so load from anything else on the
    machine falls on both alike and the ratio between them stays meaningful.
    """
    operations = {"poll": poll, "cycle": cycle}
    times: dict[tuple[str, str], list[float]] = {
        (op, q): [] for op in operations for q in (REFERENCE, QUEUE)
    }
    for op_name, op in operations.items():
        for _ in range(10):  # warm caches and the PL/pgSQL function cache
            for queue in (REFERENCE, QUEUE):
                op(conn, queue)
        for _ in range(samples):
            for queue in (REFERENCE, QUEUE):
                start = time.perf_counter()
                op(conn, queue)
                times[(op_name, queue)].append(time.perf_counter() - start)
    return {key: statistics.median(values) * 1000 for key, values in times.items()}


def reset_reference(conn: psycopg.Connection) -> None:
    """Empties the reference queue again (the previous round's cycles finished tasks in it)."""
    conn.execute("SELECT absurd.cleanup_tasks(%s, 0, 1000000)", (REFERENCE,))


def vacuum(conn: psycopg.Connection) -> None:
    for queue in (QUEUE, REFERENCE):
        for prefix in ("t", "r", "c"):
            conn.execute(
                sql.SQL("VACUUM (ANALYZE) absurd.{}").format(sql.Identifier(f"{prefix}_{queue}"))
            )


def with_values(text: str, values: list[str]) -> str:
    """The statement with $1, $2, ... replaced by the given SQL expressions."""
    return re.sub(r"\$(\d+)(?!\d)", lambda m: f"({values[int(m.group(1)) - 1]})", text)


def plans(conn: psycopg.Connection) -> dict[str, str]:
    """EXPLAIN (ANALYZE, BUFFERS) of the engine's own statements, in a transaction rolled back.

    The engine runs each text with EXECUTE ... USING, planned with the values known; the
    same values written in place of $n give the same plan.
    """
    out = {}
    now = conn.execute("SELECT quote_literal(absurd.current_time())").fetchone()[0]
    for name in PLANNED:
        text = conn.execute("SELECT absurd.engine_query(%s, %s)", (QUEUE, name)).fetchone()[0]
        text = with_values(
            text,
            [value.strip() for value in PLAN_ARGS[name].format(now=now).split(",")],
        )
        with conn.transaction(force_rollback=True):
            # The planner settings claim_task runs these with (its SET clauses).
            conn.execute(
                """SELECT set_config(split_part(setting, '=', 1), split_part(setting, '=', 2), true)
                     FROM pg_proc, unnest(proconfig) AS setting
                    WHERE oid = 'absurd.claim_task(text, text, integer, integer)'::regprocedure"""
            )
            rows = conn.execute(
                sql.SQL("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) ") + sql.SQL(text)
            ).fetchall()
        out[name] = "\n".join(row[0] for row in rows)
    return out


def sizes(conn: psycopg.Connection) -> str:
    """Rows and sizes of the full queue's tables and indexes: history vs what the hot path reads."""
    lines = []
    for prefix in ("t", "r", "c"):
        table = f"{prefix}_{QUEUE}"
        rows, size = conn.execute(
            "SELECT (SELECT count(*) FROM absurd.{}), pg_size_pretty(pg_relation_size(%s::regclass))".replace(
                "{}", sql.Identifier(table).as_string(conn)
            ),
            (f"absurd.{sql.Identifier(table).as_string(conn)}",),
        ).fetchone()
        indexes = conn.execute(
            """SELECT i.indexrelid::regclass::text, pg_size_pretty(pg_relation_size(i.indexrelid))
                 FROM pg_index i WHERE i.indrelid = %s::regclass ORDER BY 1""",
            (f"absurd.{sql.Identifier(table).as_string(conn)}",),
        ).fetchall()
        listed = ", ".join(f"{name.removeprefix('absurd.')} {isize}" for name, isize in indexes)
        lines.append(f"{table}: {rows:,} rows, {size}; indexes: {listed}")
    return "\n".join(lines)


def run(
    dsn: str,
    wanted: list[int],
    samples: int,
    batch: int,
    jobs: int,
    with_vacuum: bool,
    sync_commit: bool,
) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        if not sync_commit:
            # Each cycle commits four times; waiting for four WAL flushes would measure the
            # disk, not the engine, and add its noise to every ratio.
            conn.execute("SET synchronous_commit = off")
        version = conn.execute("SHOW server_version").fetchone()[0]
        print(
            f"PostgreSQL {version}; {samples} samples per median; "
            f"synchronous_commit {'on' if sync_commit else 'off'}; "
            f"VACUUM (ANALYZE) after each fill: {'yes' if with_vacuum else 'no'}"
        )
        install(conn)
        results = []
        have = 0
        for n in wanted:
            print(f"N = {n:,}", file=sys.stderr, flush=True)
            fill(dsn, have, n, batch, jobs)
            have = n
            reset_reference(conn)
            if with_vacuum:
                vacuum(conn)
            medians = measure(conn, samples)
            # The measured cycles finished more tasks; they count as history from now on.
            have += samples + 10
            results.append((n, medians, plans(conn), sizes(conn)))

    print()
    print("Medians in ms. 'empty' is a second queue with no history, measured sample by sample in")
    print("alternation with the full one; 'x empty' is full / empty at the same moments (the")
    print(
        f"ratio that machine load cannot skew), 'x N=0' is full / the full queue's figure at N = {results[0][0]:,}."
    )
    print()
    header = (
        f"{'finished tasks':>15} | {'poll empty':>10} {'poll full':>9} {'x empty':>7} {'x N=0':>6} |"
        f" {'cycle empty':>11} {'cycle full':>10} {'x empty':>7} {'x N=0':>6}"
    )
    print(header)
    print("-" * len(header))
    base = results[0][1]
    for n, m, _, _ in results:
        print(
            f"{n:>15,} | {m[('poll', REFERENCE)]:>10.3f} {m[('poll', QUEUE)]:>9.3f}"
            f" {m[('poll', QUEUE)] / m[('poll', REFERENCE)]:>7.2f}"
            f" {m[('poll', QUEUE)] / base[('poll', QUEUE)]:>6.2f} |"
            f" {m[('cycle', REFERENCE)]:>11.3f} {m[('cycle', QUEUE)]:>10.3f}"
            f" {m[('cycle', QUEUE)] / m[('cycle', REFERENCE)]:>7.2f}"
            f" {m[('cycle', QUEUE)] / base[('cycle', QUEUE)]:>6.2f}"
        )
    for n, _, plan_texts, relation_sizes in results:
        print(f"\n=== N = {n:,}: {relation_sizes}")
        for name, text in plan_texts.items():
            print(f"--- {name}\n{text}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--dsn", default=DEFAULT_DSN, help=f"server to use (default {DEFAULT_DSN})")
    where.add_argument(
        "--embedded", action="store_true", help="use a private pgserver in a temp dir"
    )
    parser.add_argument(
        "--sizes",
        default="0,100000,1000000",
        help="finished-task counts, comma separated",
    )
    parser.add_argument("--samples", type=int, default=200, help="samples per median (default 200)")
    parser.add_argument("--batch", type=int, default=10000, help="tasks per fill transaction")
    parser.add_argument(
        "--fill-jobs", type=int, default=2, help="parallel fill connections (default 2)"
    )
    parser.add_argument(
        "--no-vacuum", action="store_true", help="skip VACUUM (ANALYZE) after each fill"
    )
    parser.add_argument(
        "--sync-commit",
        action="store_true",
        help="keep synchronous_commit on while measuring (adds disk flushes)",
    )
    parser.add_argument("--keep", action="store_true", help=f"keep the {BENCH_DB} database")
    args = parser.parse_args(argv)
    wanted = sorted({int(size.replace("_", "")) for size in args.sizes.split(",") if size.strip()})

    tmp = None
    server = None
    admin_dsn = args.dsn
    if args.embedded:
        from absurd_tui.db import embedded

        tmp = Path(tempfile.mkdtemp(prefix="absurd-bench-"))
        server = embedded.get_server(tmp / "pgdata", cleanup_mode="delete")
        admin_dsn = server.get_uri("postgres")
    try:
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(BENCH_DB))
            )
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(BENCH_DB)))
        try:
            run(
                with_db(admin_dsn, BENCH_DB),
                wanted,
                args.samples,
                args.batch,
                args.fill_jobs,
                not args.no_vacuum,
                args.sync_commit,
            )
        finally:
            if not args.keep:
                with psycopg.connect(admin_dsn, autocommit=True) as admin:
                    admin.execute(
                        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                            sql.Identifier(BENCH_DB)
                        )
                    )
    finally:
        if server is not None:
            server.cleanup()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
