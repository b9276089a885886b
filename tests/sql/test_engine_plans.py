"""The engine's per-queue statements use the indexes meant for them and read no history.

absurd.engine_query() returns the exact text the engine executes (claim_task's sweeps and
scan, cleanup), so these plans are the engine's own. They are taken under the planner
settings claim_task runs with (its proconfig), after filling the queue with finished
tasks through the engine's functions, so a plan that scanned history would show it.
"""

from __future__ import annotations

import re

import psycopg
import pytest
from psycopg import sql

from .helpers import claim_one, create_queue, spawn

HISTORY = 2000

# statement -> (function that runs it, arguments for EXECUTE, index names that must appear,
# with {q} = the queue name)
STATEMENTS = {
    "cancel_sweep": ("claim_task", "{now}", ["t_{q}_cdi"]),
    "lease_sweep": ("claim_task", "{now}, 1", ["r_{q}_cei"]),
    "claim": ("claim_task", "{now}, 1", ["r_{q}_sai", "t_{q}_pkey"]),
    "cleanup_tasks": (
        "cleanup_batch",
        "{now}, 10",
        [
            "r_{q}_cai",
            "r_{q}_fai",
            "t_{q}_cai",
            "r_{q}_ti",
            "w_{q}_ti",
            "c_{q}_pkey",
            "t_{q}_pkey",
        ],
    ),
    "cleanup_events": ("cleanup_batch", "{now}, 10", ["e_{q}_eai", "e_{q}_pkey"]),
}

FILL = sql.SQL("""
DO $fill$
DECLARE
    v_claimed record;
BEGIN
    FOR i IN 1..{n} LOOP
        PERFORM absurd.spawn_task({q}, 'history', '{{}}'::jsonb,
                                  '{{"cancellation": {{"max_duration": 3600}}}}'::jsonb);
    END LOOP;
    FOR v_claimed IN SELECT * FROM absurd.claim_task({q}, 'filler', 0, {n}) LOOP
        PERFORM absurd.set_task_checkpoint_state({q}, v_claimed.task_id, 'step', '1'::jsonb,
                                                 v_claimed.run_id, NULL);
        PERFORM absurd.complete_run({q}, v_claimed.run_id, '{{"ok": true}}'::jsonb);
    END LOOP;
    FOR i IN 1..{n} LOOP
        PERFORM absurd.emit_event({q}, 'event-' || i, '1'::jsonb);
    END LOOP;
END
$fill$
""")


def function_settings(conn: psycopg.Connection, function: str) -> list[tuple[str, str]]:
    """The planner settings an engine function pins with SET clauses, as (name, value)."""
    row = conn.execute(
        """SELECT proconfig FROM pg_proc
            WHERE proname = %s AND pronamespace = 'absurd'::regnamespace""",
        (function,),
    ).fetchone()
    return [tuple(item.split("=", 1)) for item in (row[0] or [])]


def explain(conn: psycopg.Connection, q: str, name: str, analyze: bool = False) -> str:
    function, args, _ = STATEMENTS[name]
    text = conn.execute("SELECT absurd.engine_query(%s, %s)", (q, name)).fetchone()[0]
    # The engine runs the text with EXECUTE ... USING, planned with the values known; the
    # same values written in place give the same plan, without a PREPARE (which psycopg
    # may DEALLOCATE ALL on rollback).
    # {now} is written as a literal: the engine passes a value, which the planner can
    # compare with an index, while absurd.current_time() is volatile (a filter at best).
    now = conn.execute("SELECT quote_literal(absurd.current_time())").fetchone()[0]
    values = [value.strip() for value in args.format(now=now).split(",")]
    text = re.sub(r"\$(\d+)(?!\d)", lambda m: f"({values[int(m.group(1)) - 1]})", text)
    options = "ANALYZE, BUFFERS, COSTS OFF, TIMING OFF" if analyze else "COSTS OFF"
    # Rolled back: ANALYZE really runs the statement, and the settings stay local.
    with conn.transaction(force_rollback=True):
        for setting, value in function_settings(conn, function):
            conn.execute("SELECT set_config(%s, %s, true)", (setting, value))
        rows = conn.execute(sql.SQL(f"EXPLAIN ({options}) ") + sql.SQL(text)).fetchall()
    return "\n".join(r[0] for r in rows)


@pytest.fixture(params=["jobs", 'Odd "queue" name'])
def full_queue(conn, request) -> str:
    q = request.param
    create_queue(conn, q)
    conn.execute(FILL.format(n=sql.Literal(HISTORY), q=sql.Literal(q)))
    # Some live work too, so no branch is trivially empty: a pending task, a running one.
    spawn(conn, q)
    spawn(conn, q)
    claim_one(conn, q)
    # As autovacuum would: the finished tasks' old row versions leave dead index entries.
    for prefix in ("t", "r", "c", "e", "w"):
        conn.execute(sql.SQL("VACUUM (ANALYZE) absurd.{}").format(sql.Identifier(f"{prefix}_{q}")))
    return q


def test_claim_task_pins_the_ordered_index_scan(conn):
    assert dict(function_settings(conn, "claim_task")) == {
        "enable_bitmapscan": "off",
        "jit": "off",
    }


def test_engine_statements_use_their_indexes_and_skip_history(conn, full_queue):
    # One test per queue name: filling the history is the slow part.
    for name, (_, _, indexes) in STATEMENTS.items():
        plan = explain(conn, full_queue, name)
        for index in indexes:
            quoted = conn.execute(
                "SELECT quote_ident(%s)", (index.format(q=full_queue),)
            ).fetchone()[0]
            assert f" using {quoted} " in plan, f"{name}: {index} not used\n{plan}"
        assert "Seq Scan" not in plan, f"{name}:\n{plan}"

    # The hot statements bound their index scans with the time, not merely filter them.
    bounded_by = {
        "cancel_sweep": "absurd.cancellation_deadline(cancellation, enqueue_at, first_started_at) <=",
        "lease_sweep": "claim_expires_at <=",
        "claim": "available_at <=",
    }
    for name, condition in bounded_by.items():
        plan = explain(conn, full_queue, name, analyze=True)
        conditions = [line for line in plan.splitlines() if "Index Cond:" in line]
        assert any(condition in line for line in conditions), f"{name}: scan not bounded\n{plan}"
        # Buffers the execution touched (the top node's line carries the total; planning's
        # catalog reads are listed after "Planning:" and do not count). HISTORY finished
        # tasks fill about a hundred pages in each table; the live rows (one pending task,
        # one running) sit in a few, plus one root-to-leaf path per index.
        execution = plan.split("\nPlanning:")[0]
        touched = max((int(n) for n in re.findall(r"shared hit=(\d+)", execution)), default=0)
        assert touched <= 16, f"{name} read {touched} pages\n{plan}"
