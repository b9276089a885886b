"""The pg_cron helpers. Without pg_cron they say so and change nothing. With it they
schedule, replace and remove the maintenance jobs. The servers the tests run on do not ship
pg_cron, so a stand-in with pg_cron's interface (a cron.job table, cron.schedule and
cron.unschedule) takes its place; the helpers only ever use that interface."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from psycopg import sql

from .helpers import FakeClock, raises_db, spawn

STAND_IN = """
CREATE SCHEMA cron;
CREATE TABLE cron.job (
    jobid bigserial PRIMARY KEY,
    jobname text UNIQUE,
    schedule text NOT NULL,
    command text NOT NULL
);
CREATE FUNCTION cron.schedule(job_name text, schedule text, command text) RETURNS bigint
LANGUAGE sql AS $$
    INSERT INTO cron.job (jobname, schedule, command) VALUES (job_name, schedule, command)
    ON CONFLICT (jobname) DO UPDATE SET schedule = EXCLUDED.schedule, command = EXCLUDED.command
    RETURNING jobid
$$;
CREATE FUNCTION cron.unschedule(job_id bigint) RETURNS boolean
LANGUAGE sql AS $$ DELETE FROM cron.job WHERE jobid = job_id RETURNING true $$;
"""


@pytest.fixture
def clock(conn):
    return FakeClock(conn, start=datetime(2031, 3, 5, 12, 0, tzinfo=UTC))


@pytest.fixture
def cron(conn):
    conn.execute(STAND_IN)
    return conn


def jobs(conn) -> dict[str, str]:
    return dict(conn.execute("SELECT jobname, command FROM cron.job ORDER BY jobname").fetchall())


@pytest.mark.parametrize(
    "call",
    [
        "SELECT * FROM absurd.enable_cron()",
        "SELECT * FROM absurd.disable_cron()",
        "SELECT * FROM absurd.schedule_detach_jobs()",
    ],
)
def test_without_pg_cron_each_helper_names_what_is_missing(conn, call):
    with raises_db("P0001", "pg_cron is not available (missing cron.job)") as info:
        conn.execute(call)
    assert "CREATE EXTENSION pg_cron" in (info.value.diag.message_hint or "")


def test_without_pg_cron_drop_queue_still_works(conn):
    conn.execute("SELECT absurd.create_queue('jobs')")
    conn.execute("SELECT absurd.drop_queue('jobs')")
    assert conn.execute("SELECT count(*) FROM absurd.queues").fetchone()[0] == 0


def test_a_partial_cron_schema_is_refused_by_name(conn):
    conn.execute("CREATE SCHEMA cron; CREATE TABLE cron.job (jobid bigint, jobname text)")
    with raises_db("P0001", "pg_cron is not available (missing cron.schedule)"):
        conn.execute("SELECT * FROM absurd.enable_cron()")


def test_enable_cron_schedules_three_jobs_and_replaces_them(cron, clock):
    rows = cron.execute("SELECT job_name FROM absurd.enable_cron()").fetchall()
    assert [r[0] for r in rows] == [
        "absurd_partitions_all",
        "absurd_cleanup_all",
        "absurd_detach_plan_all",
    ]
    assert jobs(cron) == {
        "absurd_partitions_all": "SELECT absurd.ensure_partitions(NULL)",
        "absurd_cleanup_all": "SELECT * FROM absurd.cleanup_all_queues(NULL)",
        "absurd_detach_plan_all": "SELECT * FROM absurd.schedule_detach_jobs(NULL)",
    }
    for command in jobs(cron).values():
        cron.execute(command)  # every scheduled command runs as written
    cron.execute("SELECT * FROM absurd.enable_cron(NULL, '*/5 * * * *')")
    schedules = dict(cron.execute("SELECT jobname, schedule FROM cron.job").fetchall())
    assert len(schedules) == 3 and schedules["absurd_partitions_all"] == "*/5 * * * *"


def test_queue_scoped_jobs_and_disable_cron(cron, clock):
    cron.execute("SELECT absurd.create_queue('jobs')")
    suffix = cron.execute("SELECT left(md5('jobs'), 12)").fetchone()[0]
    cron.execute("SELECT * FROM absurd.enable_cron('jobs')")
    cron.execute("SELECT * FROM absurd.enable_cron()")
    assert jobs(cron)[f"absurd_cleanup_{suffix}"] == (
        "SELECT * FROM absurd.cleanup_all_queues('jobs')"
    )
    removed = cron.execute("SELECT job_name FROM absurd.disable_cron('jobs')").fetchall()
    assert sorted(r[0] for r in removed) == sorted(
        f"absurd_{kind}_{suffix}" for kind in ("partitions", "cleanup", "detach_plan")
    )
    assert sorted(jobs(cron)) == [
        "absurd_cleanup_all",
        "absurd_detach_plan_all",
        "absurd_partitions_all",
    ]
    with raises_db("P0001", 'Queue "nope" does not exist'):
        cron.execute("SELECT * FROM absurd.enable_cron('nope')")
    with raises_db("P0001", "Cleanup schedule must be provided"):
        cron.execute("SELECT * FROM absurd.enable_cron(NULL, '5 * * * *', ' ')")


def test_drop_queue_removes_the_queues_jobs(cron, clock):
    cron.execute("SELECT absurd.create_queue('jobs')")
    cron.execute("SELECT * FROM absurd.enable_cron('jobs')")
    cron.execute("SELECT absurd.drop_queue('jobs')")
    assert jobs(cron) == {}


def test_detach_jobs_retire_the_oldest_empty_week_per_table(cron, clock):
    cron.execute("SELECT absurd.create_queue('pq', 'partitioned')")
    cron.execute(
        "SELECT absurd.set_queue_policy('pq', %s::jsonb)",
        ('{"detach_mode": "empty", "detach_min_age": "1 day"}',),
    )
    spawn(cron, "pq")
    clock.advance(90 * 86400)
    planned = cron.execute(
        "SELECT job_name, queue_name, partition_table, job_kind FROM absurd.schedule_detach_jobs('pq')"
    ).fetchall()
    candidates = cron.execute("SELECT * FROM absurd.list_detach_candidates('pq')").fetchall()
    per_parent = {parent for _, parent, _ in candidates}
    assert len(planned) == 2 * len(per_parent)  # one detach and one drop job per table
    again = cron.execute("SELECT * FROM absurd.schedule_detach_jobs('pq')").fetchall()
    assert again == [], "a table with a pipeline gets no second one"

    detach_name, _, target, kind = planned[0]
    assert kind == "detach"
    commands = jobs(cron)
    # The parent has a DEFAULT partition, so the detach cannot be CONCURRENTLY.
    assert commands[detach_name].endswith(f"DETACH PARTITION absurd.{target}")
    drop_name = next(name for name, _, t, k in planned if t == target and k == "drop")
    assert drop_name == detach_name.replace("absurd_detach_run_", "absurd_drop_run_")

    assert cron.execute(commands[drop_name]).fetchone()[0] is False  # not detached yet
    cron.execute(commands[detach_name])
    assert cron.execute(commands[drop_name]).fetchone()[0] is True
    assert cron.execute("SELECT to_regclass(%s)", (f"absurd.{target}",)).fetchone()[0] is None
    left = jobs(cron)
    assert detach_name not in left and drop_name not in left, "the pipeline unschedules itself"


def test_without_a_default_partition_the_detach_is_concurrent(cron, clock):
    cron.execute("SELECT absurd.create_queue('pq', 'partitioned')")
    cron.execute(
        "SELECT absurd.set_queue_policy('pq', %s::jsonb)",
        ('{"detach_mode": "empty", "detach_min_age": "0", "default_partition": "disabled"}',),
    )
    clock.advance(60 * 86400)
    planned = cron.execute(
        "SELECT job_name, partition_table FROM absurd.schedule_detach_jobs('pq') WHERE job_kind = 'detach'"
    ).fetchall()
    assert planned
    name, target = planned[0]
    command = jobs(cron)[name]
    assert command.endswith(" CONCURRENTLY")
    cron.execute(command)  # autocommit: CONCURRENTLY runs outside a transaction block
    parent = sql.Identifier(target.rsplit("_", 1)[0])
    attached = cron.execute(
        sql.SQL(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'absurd.{}'::regclass::oid"
        ).format(parent),
    ).fetchone()[0]
    assert attached >= 1
    assert cron.execute("SELECT absurd.drop_detached_partition(%s)", (target,)).fetchone()[0]
    assert clock.now > datetime(2031, 3, 5, tzinfo=UTC) + timedelta(days=59)
