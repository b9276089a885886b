"""How the engine's hot path scales with history (issue 7).

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
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "sql" / "absurd.sql"
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
BENCH_DB = "absurd_bench"
QUEUE = "bench"
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

PLANNED = ("cancel_sweep", "lease_sweep", "claim")
PLAN_ARGS = {
    "cancel_sweep": "absurd.current_time()",
    "lease_sweep": "absurd.current_time(), 1",
    "claim": "absurd.current_time(), 1, 'bench', 30",
}


def with_db(dsn: str, dbname: str) -> str:
    params = conninfo_to_dict(dsn)
    params["dbname"] = dbname
    return make_conninfo(**params)


def install(conn: psycopg.Connection) -> None:
    conn.execute(SCHEMA.read_text(encoding="utf-8"))
    conn.execute("SELECT absurd.create_queue(%s)", (QUEUE,))


def fill(conn: psycopg.Connection, have: int, want: int, batch: int) -> None:
    """Adds finished tasks until the queue holds `want` of them."""
    started = time.monotonic()
    while have < want:
        step = min(batch, want - have)
        conn.execute(
            FILL_BATCH_SQL.format(
                batch=sql.Literal(step), queue=sql.Literal(QUEUE), options=sql.Literal(TASK_OPTIONS)
            )
        )
        have += step
        rate = have / max(time.monotonic() - started, 1e-9)
        print(f"  filled {have:>9,} tasks ({rate:,.0f}/s)", file=sys.stderr, flush=True)


def timed(fn, samples: int, warmup: int = 20) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def measure(conn: psycopg.Connection, samples: int) -> tuple[float, float]:
    def poll() -> None:
        rows = conn.execute(
            "SELECT run_id FROM absurd.claim_task(%s, %s, %s, %s)", (QUEUE, "bench", 30, 1)
        ).fetchall()
        assert rows == [], "the queue was expected to be empty"

    def cycle() -> None:
        task_id, _run_id, _attempt = conn.execute(
            "SELECT task_id, run_id, attempt FROM absurd.spawn_task(%s, %s, %s, %s)",
            (QUEUE, "cycle", json.dumps({"n": 1}), TASK_OPTIONS),
        ).fetchone()
        claimed = conn.execute(
            "SELECT run_id, task_id FROM absurd.claim_task(%s, %s, %s, %s)", (QUEUE, "bench", 30, 1)
        ).fetchone()
        assert claimed is not None and claimed[1] == task_id
        conn.execute(
            "SELECT absurd.set_task_checkpoint_state(%s, %s, %s, %s, %s, %s)",
            (QUEUE, task_id, "step", json.dumps({"v": 1}), claimed[0], 30),
        )
        conn.execute("SELECT absurd.complete_run(%s, %s, %s)", (QUEUE, claimed[0], json.dumps(1)))

    return timed(poll, samples), timed(cycle, samples)


def plans(conn: psycopg.Connection) -> dict[str, str]:
    """EXPLAIN (ANALYZE, BUFFERS) of the engine's own statements; the rollback also drops the PREPAREs."""
    out = {}
    for name in PLANNED:
        text = conn.execute("SELECT absurd.engine_query(%s, %s)", (QUEUE, name)).fetchone()[0]
        with conn.transaction(force_rollback=True):
            conn.execute(f"PREPARE bench_{name} AS {text}")
            rows = conn.execute(
                f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) EXECUTE bench_{name}({PLAN_ARGS[name]})"
            ).fetchall()
        out[name] = "\n".join(row[0] for row in rows)
    return out


def sizes(conn: psycopg.Connection) -> str:
    rows = conn.execute(
        """SELECT c.relname, pg_size_pretty(pg_relation_size(c.oid))
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'absurd' AND c.relname LIKE ANY (ARRAY['%%_bench', '%%_bench_%%'])
            ORDER BY pg_relation_size(c.oid) DESC"""
    ).fetchall()
    return ", ".join(f"{name} {size}" for name, size in rows)


def run(dsn: str, wanted: list[int], samples: int, batch: int, vacuum: bool) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
        print(f"PostgreSQL {version}; schema {SCHEMA.relative_to(ROOT)}; {samples} samples per median")
        install(conn)
        results = []
        have = 0
        for n in sorted(wanted):
            print(f"N = {n:,}", file=sys.stderr, flush=True)
            fill(conn, have, n, batch)
            have = n
            if vacuum:
                conn.execute(sql.SQL("VACUUM (ANALYZE) absurd.{}").format(sql.Identifier(f"r_{QUEUE}")))
                conn.execute(sql.SQL("VACUUM (ANALYZE) absurd.{}").format(sql.Identifier(f"t_{QUEUE}")))
                conn.execute(sql.SQL("VACUUM (ANALYZE) absurd.{}").format(sql.Identifier(f"c_{QUEUE}")))
            poll_ms, cycle_ms = measure(conn, samples)
            # The measured cycles finished more tasks; count them as history from here on.
            have += samples + 20
            results.append((n, poll_ms, cycle_ms, plans(conn), sizes(conn)))

    base_poll, base_cycle = results[0][1], results[0][2]
    print()
    print(f"{'finished tasks':>15} {'claim poll ms':>14} {'ratio':>6} {'cycle ms':>9} {'ratio':>6}")
    for n, poll_ms, cycle_ms, _, _ in results:
        print(
            f"{n:>15,} {poll_ms:>14.3f} {poll_ms / base_poll:>6.2f} "
            f"{cycle_ms:>9.3f} {cycle_ms / base_cycle:>6.2f}"
        )
    for n, _, _, plan_texts, relation_sizes in results:
        print(f"\n=== N = {n:,}: relation sizes: {relation_sizes}")
        for name, text in plan_texts.items():
            print(f"--- {name}\n{text}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--dsn", default=DEFAULT_DSN, help=f"server to use (default {DEFAULT_DSN})")
    where.add_argument("--embedded", action="store_true", help="use a private pgserver in a temp dir")
    parser.add_argument("--sizes", default="0,100000,1000000", help="finished-task counts, comma separated")
    parser.add_argument("--samples", type=int, default=200, help="samples per median (default 200)")
    parser.add_argument("--batch", type=int, default=10000, help="tasks per fill transaction")
    parser.add_argument("--no-vacuum", action="store_true", help="skip VACUUM (ANALYZE) after each fill")
    parser.add_argument("--keep", action="store_true", help=f"keep the {BENCH_DB} database")
    args = parser.parse_args(argv)
    wanted = sorted({int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()})

    tmp = None
    server = None
    admin_dsn = args.dsn
    if args.embedded:
        import pgserver

        tmp = Path(tempfile.mkdtemp(prefix="absurd-bench-"))
        server = pgserver.get_server(tmp / "pgdata", cleanup_mode="delete")
        admin_dsn = server.get_uri("postgres")
    try:
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(BENCH_DB)))
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(BENCH_DB)))
        try:
            run(with_db(admin_dsn, BENCH_DB), wanted, args.samples, args.batch, not args.no_vacuum)
        finally:
            if not args.keep:
                with psycopg.connect(admin_dsn, autocommit=True) as admin:
                    admin.execute(
                        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(BENCH_DB))
                    )
    finally:
        if server is not None:
            server.cleanup()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
