"""absurd.current_time(), the fake clock, portable_uuidv7() and the schema version."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

from .helpers import T0, set_now


def test_current_time_follows_the_real_clock_without_fake_now(conn):
    before = datetime.now(UTC)
    value = conn.execute("SELECT absurd.current_time()").fetchone()[0]
    after = datetime.now(UTC)
    assert before - timedelta(seconds=2) <= value <= after + timedelta(seconds=2)


def test_current_time_is_volatile_within_one_transaction(conn):
    # clock_timestamp(), not now(): time moves on inside a transaction, so a long
    # transaction still sees leases expire and timers come due.
    with conn.transaction():
        first = conn.execute("SELECT absurd.current_time()").fetchone()[0]
        conn.execute("SELECT pg_sleep(0.02)")
        second = conn.execute("SELECT absurd.current_time()").fetchone()[0]
    assert second > first


def test_current_time_returns_fake_now_when_set(conn):
    conn.execute("SET absurd.fake_now = '2031-03-04T12:00:00+00:00'")
    assert conn.execute("SELECT absurd.current_time()").fetchone()[0] == T0
    # Stays put: the fake clock only moves when the test moves it.
    conn.execute("SELECT pg_sleep(0.01)")
    assert conn.execute("SELECT absurd.current_time()").fetchone()[0] == T0


def test_fake_now_honours_the_offset_in_the_setting(conn):
    set_now(conn, "2031-03-04T14:00:00+02:00")
    assert conn.execute("SELECT absurd.current_time()").fetchone()[0] == T0


def test_blank_fake_now_means_the_real_clock(conn):
    set_now(conn, T0)
    set_now(conn, "")
    value = conn.execute("SELECT absurd.current_time()").fetchone()[0]
    assert abs(value - datetime.now(UTC)) < timedelta(seconds=5)
    set_now(conn, "   ")
    value = conn.execute("SELECT absurd.current_time()").fetchone()[0]
    assert abs(value - datetime.now(UTC)) < timedelta(seconds=5)


def test_fake_now_is_per_session_and_set_local_reverts(conn, connect):
    other = connect()
    set_now(conn, T0)
    real = other.execute("SELECT absurd.current_time()").fetchone()[0]
    assert abs(real - datetime.now(UTC)) < timedelta(seconds=5)

    set_now(conn, "")
    with conn.transaction():
        conn.execute("SET LOCAL absurd.fake_now = '2031-03-04T12:00:00Z'")
        assert conn.execute("SELECT absurd.current_time()").fetchone()[0] == T0
    after = conn.execute("SELECT absurd.current_time()").fetchone()[0]
    assert abs(after - datetime.now(UTC)) < timedelta(seconds=5)


def test_current_time_is_declared_volatile(conn):
    volatility = conn.execute(
        "SELECT provolatile FROM pg_proc WHERE oid = 'absurd.current_time()'::regprocedure"
    ).fetchone()[0]
    assert volatility == "v"


def test_portable_uuidv7_has_version_7_and_the_rfc_variant(conn):
    ids = [
        row[0]
        for row in conn.execute("SELECT absurd.portable_uuidv7() FROM generate_series(1, 50)")
    ]
    assert len(set(ids)) == 50
    for value in ids:
        assert isinstance(value, UUID)
        assert value.version == 7
        assert value.variant == "specified in RFC 4122"


def test_portable_uuidv7_ids_generated_later_sort_later(conn):
    previous = None
    for _ in range(15):
        value = conn.execute("SELECT absurd.portable_uuidv7()").fetchone()[0]
        if previous is not None:
            assert value > previous
            # Compared as PostgreSQL compares them too (ORDER BY run_id DESC in dashboards).
            assert conn.execute("SELECT %s::uuid > %s::uuid", (value, previous)).fetchone()[0]
        previous = value
        conn.execute("SELECT pg_sleep(0.003)")


def test_portable_uuidv7_ids_sort_later_when_the_fake_clock_moves_forward(conn):
    ids = []
    for step in range(5):
        set_now(conn, T0 + timedelta(minutes=step))
        ids.append(conn.execute("SELECT absurd.portable_uuidv7()").fetchone()[0])
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_portable_uuidv7_embeds_the_time_it_was_made(conn):
    value = conn.execute("SELECT absurd.portable_uuidv7()").fetchone()[0]
    millis = int.from_bytes(value.bytes[:6], "big")
    made = datetime.fromtimestamp(millis / 1000, UTC)
    assert abs(made - datetime.now(UTC)) < timedelta(seconds=5)


def test_schema_version(conn):
    assert conn.execute("SELECT absurd.get_schema_version()").fetchone()[0] == "0.4.0+absurd-tui.2"
