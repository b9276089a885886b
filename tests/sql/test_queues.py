"""The queue registry, create/drop/list, queue-name validation and queue policies."""

from __future__ import annotations

import json
from datetime import timedelta

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row

from absurd_tui.db import schema

from .helpers import (
    T0,
    claim_one,
    complete,
    count,
    create_queue,
    raises_db,
    set_now,
    spawn,
    task_row,
)

PER_QUEUE_PREFIXES = ("t", "r", "c", "e", "w")
POLICY_COLUMNS = (
    "queue_name",
    "storage_mode",
    "default_partition",
    "partition_lookahead",
    "partition_lookback",
    "cleanup_ttl",
    "cleanup_limit",
    "detach_mode",
    "detach_min_age",
)


def tables_of(conn, q: str) -> set[str]:
    rows = conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'absurd' AND tablename = ANY(%s)",
        ([f"{p}_{q}" for p in (*PER_QUEUE_PREFIXES, "i")],),
    ).fetchall()
    return {r[0] for r in rows}


def registry(conn, q: str) -> dict | None:
    return (
        conn.cursor(row_factory=dict_row)
        .execute("SELECT * FROM absurd.queues WHERE queue_name = %s", (q,))
        .fetchone()
    )


def policy(conn, q: str) -> dict | None:
    return (
        conn.cursor(row_factory=dict_row)
        .execute("SELECT * FROM absurd.get_queue_policy(%s)", (q,))
        .fetchone()
    )


def set_policy(conn, q: str, value) -> None:
    # The SDK's exact call shape.
    conn.execute("SELECT absurd.set_queue_policy(%s, %s::jsonb)", (q, json.dumps(value)))


# --- registry -------------------------------------------------------------------------


def test_registry_columns_and_types(conn):
    rows = conn.execute(
        """SELECT column_name, data_type, is_nullable
             FROM information_schema.columns
            WHERE table_schema = 'absurd' AND table_name = 'queues'"""
    ).fetchall()
    columns = {name: (dtype, nullable) for name, dtype, nullable in rows}
    expected = {
        "queue_name": "text",
        "created_at": "timestamp with time zone",
        "storage_mode": "text",
        "default_partition": "text",
        "partition_lookahead": "interval",
        "partition_lookback": "interval",
        "cleanup_ttl": "interval",
        "cleanup_limit": "integer",
        "detach_mode": "text",
        "detach_min_age": "interval",
    }
    for name, dtype in expected.items():
        assert name in columns, f"absurd.queues lacks {name}"
        assert columns[name] == (dtype, "NO"), f"{name}: {columns[name]}"
    pk = conn.execute(
        """SELECT a.attname FROM pg_index i
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
            WHERE i.indrelid = 'absurd.queues'::regclass AND i.indisprimary"""
    ).fetchall()
    assert [r[0] for r in pk] == ["queue_name"]


def test_create_queue_registers_with_default_policy(conn):
    set_now(conn, T0)
    create_queue(conn, "jobs")
    row = registry(conn, "jobs")
    assert row["created_at"] == T0
    assert row["storage_mode"] == "unpartitioned"
    assert row["default_partition"] == "enabled"
    assert row["partition_lookahead"] == timedelta(days=28)
    assert row["partition_lookback"] == timedelta(days=1)
    assert row["cleanup_ttl"] == timedelta(days=30)
    assert row["cleanup_limit"] == 1000
    assert row["detach_mode"] == "none"
    assert row["detach_min_age"] == timedelta(days=30)


REGISTRY_VIOLATIONS = [
    ("storage_mode", "sharded"),
    ("default_partition", "maybe"),
    ("partition_lookahead", "-1 day"),
    ("partition_lookback", "-1 day"),
    ("cleanup_ttl", "-1 second"),
    ("cleanup_limit", 0),
    ("detach_mode", "always"),
    ("detach_min_age", "-1 day"),
]


def test_registry_check_constraints(conn):
    create_queue(conn, "jobs")
    before = registry(conn, "jobs")
    for column, bad in REGISTRY_VIOLATIONS:
        with raises_db("23514"):
            conn.execute(
                sql.SQL("UPDATE absurd.queues SET {} = %s WHERE queue_name = %s").format(
                    sql.Identifier(column)
                ),
                (bad, "jobs"),
            )
    assert registry(conn, "jobs") == before


def test_create_queue_makes_the_per_queue_tables_and_indexes(conn):
    create_queue(conn, "jobs")
    assert tables_of(conn, "jobs") == {f"{p}_jobs" for p in PER_QUEUE_PREFIXES}
    indexes = {
        r[0]
        for r in conn.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = 'absurd'"
        ).fetchall()
    }
    for name in ("r_jobs_sai", "r_jobs_ti", "r_jobs_cei", "w_jobs_eni", "w_jobs_ti", "e_jobs_eai"):
        assert name in indexes, f"missing index {name}"


def test_unpartitioned_tables_use_fillfactor_70_and_a_unique_idempotency_key(conn):
    create_queue(conn, "jobs")
    for prefix in ("t", "r", "c"):
        options = conn.execute(
            "SELECT reloptions FROM pg_class WHERE oid = %s::regclass", (f'absurd."{prefix}_jobs"',)
        ).fetchone()[0]
        assert options and "fillfactor=70" in options, f"{prefix}_jobs reloptions {options}"
    spawn(conn, "jobs", idempotency_key="k")
    second = spawn(conn, "jobs", idempotency_key="other")
    with raises_db("23505"):
        conn.execute(
            'UPDATE absurd."t_jobs" SET idempotency_key = %s WHERE task_id = %s',
            ("k", second.task_id),
        )


def test_per_queue_table_columns(conn):
    create_queue(conn, "jobs")
    expected = {
        "t": {
            "task_id": "uuid",
            "task_name": "text",
            "params": "jsonb",
            "headers": "jsonb",
            "retry_strategy": "jsonb",
            "max_attempts": "integer",
            "cancellation": "jsonb",
            "enqueue_at": "timestamp with time zone",
            "first_started_at": "timestamp with time zone",
            "state": "text",
            "attempts": "integer",
            "last_attempt_run": "uuid",
            "completed_payload": "jsonb",
            "cancelled_at": "timestamp with time zone",
            "idempotency_key": "text",
        },
        "r": {
            "run_id": "uuid",
            "task_id": "uuid",
            "attempt": "integer",
            "state": "text",
            "claimed_by": "text",
            "claim_expires_at": "timestamp with time zone",
            "available_at": "timestamp with time zone",
            "wake_event": "text",
            "event_payload": "jsonb",
            "started_at": "timestamp with time zone",
            "completed_at": "timestamp with time zone",
            "failed_at": "timestamp with time zone",
            "result": "jsonb",
            "failure_reason": "jsonb",
            "created_at": "timestamp with time zone",
        },
        "c": {
            "task_id": "uuid",
            "checkpoint_name": "text",
            "state": "jsonb",
            "status": "text",
            "owner_run_id": "uuid",
            "updated_at": "timestamp with time zone",
        },
        "e": {"event_name": "text", "payload": "jsonb", "emitted_at": "timestamp with time zone"},
        "w": {
            "run_id": "uuid",
            "step_name": "text",
            "task_id": "uuid",
            "event_name": "text",
            "timeout_at": "timestamp with time zone",
            "created_at": "timestamp with time zone",
        },
    }
    for prefix, columns in expected.items():
        rows = conn.execute(
            """SELECT column_name, data_type FROM information_schema.columns
                WHERE table_schema = 'absurd' AND table_name = %s""",
            (f"{prefix}_jobs",),
        ).fetchall()
        actual = dict(rows)
        for name, dtype in columns.items():
            assert actual.get(name) == dtype, f"{prefix}_jobs.{name}: {actual.get(name)}"


def test_create_queue_is_idempotent_and_keeps_data(conn):
    create_queue(conn, "jobs")
    spawned = spawn(conn, "jobs")
    created_at = registry(conn, "jobs")["created_at"]
    create_queue(conn, "jobs")
    conn.execute("SELECT absurd.create_queue(%s, %s)", ("jobs", "unpartitioned"))
    assert registry(conn, "jobs")["created_at"] == created_at
    assert task_row(conn, spawned.task_id, "jobs")["state"] == "pending"
    assert conn.execute("SELECT count(*) FROM absurd.queues").fetchone()[0] == 1


def test_create_queue_storage_mode_is_trimmed_and_case_insensitive(conn):
    conn.execute("SELECT absurd.create_queue(%s, %s)", ("jobs", "  UnPartitioned "))
    assert registry(conn, "jobs")["storage_mode"] == "unpartitioned"


def test_create_queue_rejects_an_unknown_storage_mode(conn):
    with raises_db("P0001", 'Unsupported queue storage mode "sharded"'):
        conn.execute("SELECT absurd.create_queue(%s, %s)", ("jobs", "sharded"))
    assert registry(conn, "jobs") is None
    assert tables_of(conn, "jobs") == set()


def test_partitioned_mode_creates_a_partitioned_queue(conn):
    conn.execute("SELECT absurd.create_queue(%s, %s)", ("jobs", " Partitioned "))
    assert registry(conn, "jobs")["storage_mode"] == "partitioned"
    assert {"t_jobs", "r_jobs", "c_jobs", "e_jobs", "w_jobs", "i_jobs"} <= tables_of(conn, "jobs")


def test_partitioned_mode_on_an_existing_queue_fails_and_keeps_it(conn):
    create_queue(conn, "jobs")
    spawned = spawn(conn, "jobs")
    with raises_db("P0001", 'already exists with storage mode "unpartitioned"'):
        conn.execute("SELECT absurd.create_queue(%s, %s)", ("jobs", "partitioned"))
    assert registry(conn, "jobs")["storage_mode"] == "unpartitioned"
    assert task_row(conn, spawned.task_id, "jobs")["state"] == "pending"


def test_create_queue_works_inside_a_transaction_that_rolls_back(conn):
    # DDL must be transactional: callers may create queues inside their own transaction.
    with pytest.raises(RuntimeError), conn.transaction():
        create_queue(conn, "jobs")
        spawn(conn, "jobs")
        raise RuntimeError("roll back")
    assert registry(conn, "jobs") is None
    assert tables_of(conn, "jobs") == set()


# --- queue names ----------------------------------------------------------------------


def validate(conn, name):
    return conn.execute("SELECT absurd.validate_queue_name(%s)", (name,)).fetchone()[0]


def test_validate_queue_name_accepts_57_bytes_and_returns_the_name(conn):
    assert validate(conn, "a" * 57) == "a" * 57
    # 28 two-byte characters are 56 bytes; the limit is in bytes, not characters.
    assert validate(conn, "é" * 28) == "é" * 28


def test_validate_queue_name_rejects_58_bytes(conn):
    name = "a" * 58
    with raises_db("P0001", f'Queue name "{name}" is too long (max 57 bytes).'):
        validate(conn, name)
    wide = "é" * 29  # 29 characters, 58 bytes
    with raises_db("P0001", f'Queue name "{wide}" is too long (max 57 bytes).'):
        validate(conn, wide)


def test_validate_queue_name_requires_a_name(conn):
    for name in (None, ""):
        with raises_db("P0001", "Queue name must be provided"):
            validate(conn, name)


def test_create_queue_applies_the_name_rule(conn):
    with raises_db("P0001", "is too long (max 57 bytes)."):
        create_queue(conn, "q" * 58)
    with raises_db("P0001", "Queue name must be provided"):
        create_queue(conn, "")
    assert conn.execute("SELECT count(*) FROM absurd.queues").fetchone()[0] == 0


UNUSUAL_NAMES = [
    "with space",
    'dou"ble',
    "sin'gle",
    "UpperCase",
    "lowercase",
    "-leading-dash",
    "_leading_underscore",
    "dots.and/slashes;drop table x",
    "ünïcødé",
    "m" * 57,
    "é" * 28,
]


def test_unusual_queue_names_work_end_to_end(conn):
    for name in UNUSUAL_NAMES:
        create_queue(conn, name)
    listed = [r[0] for r in conn.execute("SELECT queue_name FROM absurd.list_queues()")]
    assert sorted(listed) == sorted(UNUSUAL_NAMES)
    for name in UNUSUAL_NAMES:
        assert tables_of(conn, name) == {f"{p}_{name}" for p in PER_QUEUE_PREFIXES}, name
        spawned = spawn(conn, name, params={"queue": name})
        row = claim_one(conn, name)
        assert row["task_id"] == spawned.task_id
        assert row["params"] == {"queue": name}
        complete(conn, row["run_id"], {"ok": name}, q=name)
        assert task_row(conn, spawned.task_id, name)["completed_payload"] == {"ok": name}
    # "UpperCase" and "lowercase" are distinct identifiers, not folded together.
    assert count(conn, "t", "UpperCase") == 1
    for name in UNUSUAL_NAMES:
        conn.execute("SELECT absurd.drop_queue(%s)", (name,))
        assert tables_of(conn, name) == set(), name
        assert registry(conn, name) is None
    assert conn.execute("SELECT count(*) FROM absurd.queues").fetchone()[0] == 0


# --- drop and list --------------------------------------------------------------------


def test_drop_queue_removes_tables_and_registry_row(conn):
    create_queue(conn, "jobs")
    create_queue(conn, "other")
    spawn(conn, "jobs")
    conn.execute("SELECT absurd.drop_queue(%s)", ("jobs",))
    assert registry(conn, "jobs") is None
    assert tables_of(conn, "jobs") == set()
    # Other queues are untouched.
    assert tables_of(conn, "other") == {f"{p}_other" for p in PER_QUEUE_PREFIXES}
    assert registry(conn, "other") is not None


def test_drop_queue_of_an_unknown_queue_is_silent(conn):
    conn.execute("SELECT absurd.drop_queue(%s)", ("never-created",))
    # Over-long names skip validation so that old queues can still be dropped.
    conn.execute("SELECT absurd.drop_queue(%s)", ("x" * 80,))


def test_drop_then_recreate_starts_empty(conn):
    create_queue(conn, "jobs")
    spawn(conn, "jobs")
    conn.execute("SELECT absurd.drop_queue(%s)", ("jobs",))
    create_queue(conn, "jobs")
    assert count(conn, "t", "jobs") == 0


def test_list_queues_is_ordered_by_name(conn):
    for name in ("gamma", "alpha", "beta"):
        create_queue(conn, name)
    rows = (
        conn.cursor(row_factory=dict_row).execute("SELECT * FROM absurd.list_queues()").fetchall()
    )
    assert [r["queue_name"] for r in rows] == ["alpha", "beta", "gamma"]
    assert list(rows[0].keys()) == ["queue_name"]


def test_list_queues_is_empty_without_queues(conn):
    assert conn.execute("SELECT * FROM absurd.list_queues()").fetchall() == []


# --- policies -------------------------------------------------------------------------


def test_get_queue_policy_returns_the_defaults(conn):
    create_queue(conn, "jobs")
    row = policy(conn, "jobs")
    assert tuple(row.keys()) == POLICY_COLUMNS
    assert row == {
        "queue_name": "jobs",
        "storage_mode": "unpartitioned",
        "default_partition": "enabled",
        "partition_lookahead": timedelta(days=28),
        "partition_lookback": timedelta(days=1),
        "cleanup_ttl": timedelta(days=30),
        "cleanup_limit": 1000,
        "detach_mode": "none",
        "detach_min_age": timedelta(days=30),
    }


def test_get_queue_policy_of_an_unknown_queue_returns_no_row(conn):
    assert policy(conn, "nope") is None


def test_set_queue_policy_updates_only_the_given_keys(conn):
    create_queue(conn, "jobs")
    set_policy(conn, "jobs", {"cleanup_ttl": "7 days", "cleanup_limit": 25})
    row = policy(conn, "jobs")
    assert row["cleanup_ttl"] == timedelta(days=7)
    assert row["cleanup_limit"] == 25
    assert row["partition_lookahead"] == timedelta(days=28)
    assert row["detach_mode"] == "none"

    set_policy(
        conn,
        "jobs",
        {
            "partition_lookahead": "14 days",
            "partition_lookback": "2 days",
            "detach_mode": "empty",
            "detach_min_age": "3600 seconds",
        },
    )
    row = policy(conn, "jobs")
    assert row["partition_lookahead"] == timedelta(days=14)
    assert row["partition_lookback"] == timedelta(days=2)
    assert row["detach_mode"] == "empty"
    assert row["detach_min_age"] == timedelta(hours=1)
    assert row["cleanup_ttl"] == timedelta(days=7)
    assert row["cleanup_limit"] == 25
    assert registry(conn, "jobs")["cleanup_limit"] == 25


def test_set_queue_policy_with_an_empty_object_changes_nothing(conn):
    create_queue(conn, "jobs")
    before = policy(conn, "jobs")
    set_policy(conn, "jobs", {})
    assert policy(conn, "jobs") == before


def test_set_queue_policy_rejects_an_unknown_key(conn):
    create_queue(conn, "jobs")
    with raises_db("P0001", 'Unsupported queue policy key "retention"'):
        set_policy(conn, "jobs", {"retention": "1 day"})


def test_set_queue_policy_rejects_a_non_object(conn):
    create_queue(conn, "jobs")
    before = policy(conn, "jobs")
    for value in ([], "text", 5, None, [{"cleanup_ttl": "1 day"}]):
        with pytest.raises(psycopg.Error):
            set_policy(conn, "jobs", value)
    assert policy(conn, "jobs") == before


def test_set_queue_policy_on_a_missing_queue(conn):
    with raises_db("P0001", 'Queue "ghost" does not exist'):
        set_policy(conn, "ghost", {"cleanup_ttl": "1 day"})


BAD_POLICIES = [
    {"cleanup_ttl": "-1 day"},
    {"partition_lookahead": "-5 minutes"},
    {"partition_lookback": "-1 second"},
    {"detach_min_age": "-2 days"},
    {"cleanup_limit": 0},
    {"cleanup_limit": -3},
    {"detach_mode": "sometimes"},
    {"default_partition": "perhaps"},
    {"cleanup_ttl": "not an interval"},
    {"cleanup_limit": "many"},
]


def test_set_queue_policy_rejects_bad_values_and_keeps_the_old_ones(conn):
    create_queue(conn, "jobs")
    before = policy(conn, "jobs")
    for bad in BAD_POLICIES:
        with pytest.raises(psycopg.Error):
            set_policy(conn, "jobs", bad)
        assert policy(conn, "jobs") == before, bad


def test_default_partition_is_rejected_on_an_unpartitioned_queue(conn):
    create_queue(conn, "jobs")
    for value in ("enabled", "disabled"):
        with raises_db("P0001"):
            set_policy(conn, "jobs", {"default_partition": value})
    assert policy(conn, "jobs")["default_partition"] == "enabled"


def test_a_rejected_policy_change_applies_none_of_its_keys(conn):
    create_queue(conn, "jobs")
    with pytest.raises(psycopg.Error):
        set_policy(conn, "jobs", {"cleanup_ttl": "2 days", "bogus": 1})
    assert policy(conn, "jobs")["cleanup_ttl"] == timedelta(days=30)


def test_two_longest_names_sharing_a_prefix_are_separate_queues(conn):
    # Implicit constraint names (t_<q>_pkey ...) get truncated at 63 bytes and collide for
    # such names; the queues must still be created, kept apart and survive a re-install.
    a, b = "m" * 56 + "a", "m" * 56 + "b"
    for name in (a, b):
        create_queue(conn, name)
    for name in (a, b):
        spawned = spawn(conn, name, idempotency_key="same-key")
        assert spawned.created is True
        assert claim_one(conn, name)["task_id"] == spawned.task_id
    schema.install(conn)
    for name in (a, b):
        assert count(conn, "t", name) == 1
        assert tables_of(conn, name) == {f"{p}_{name}" for p in PER_QUEUE_PREFIXES}
