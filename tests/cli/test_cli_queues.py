"""absurd-tui queue list | create | drop."""

from __future__ import annotations

from .helpers import assert_clean_error


def queue_names(conn) -> list[str]:
    return [row[0] for row in conn.execute("SELECT queue_name FROM absurd.queues ORDER BY 1")]


def test_create_list_and_drop(cli, conn):
    created = cli("queue", "create", "mail jobs")
    assert created.code == 0, created
    assert created.out == 'Queue "mail jobs" created.\n'
    assert queue_names(conn) == ["mail jobs"]
    again = cli("queue", "create", "mail jobs")
    assert again.code == 0 and "already exists" in again.out, again

    conn.execute("SELECT absurd.spawn_task('mail jobs', 'send', '{}', '{}')")
    listing = cli("queue", "list")
    assert listing.code == 0, listing
    header, row = listing.out.splitlines()
    assert header.split()[:7] == [
        "QUEUE",
        "PENDING",
        "RUNNING",
        "SLEEPING",
        "COMPLETED",
        "FAILED",
        "CANCELLED",
    ]
    assert row.startswith("mail jobs  ")
    assert row.split()[2:9] == ["1", "0", "0", "0", "0", "0", "1"]

    data = cli("queue", "list", "--json").json()
    assert [q["queue"] for q in data] == ["mail jobs"]
    assert data[0]["counts"] == {
        "pending": 1,
        "running": 0,
        "sleeping": 0,
        "completed": 0,
        "failed": 0,
        "cancelled": 0,
    }
    assert data[0]["claimable"] == 1

    dropped = cli("queue", "drop", "mail jobs", "--yes")
    assert dropped.code == 0, dropped
    assert "1 task" in dropped.out
    assert queue_names(conn) == []


def test_drop_asks_and_without_a_terminal_refuses(cli, conn, default_queue):
    result = cli("queue", "drop", "default")
    assert_clean_error(result, 2, "--yes")
    assert queue_names(conn) == ["default"]


def test_drop_of_an_unknown_queue(cli, conn, default_queue):
    result = cli("queue", "drop", "nope", "--yes")
    assert_clean_error(result, 2, 'Unknown queue "nope"', '"default"')
    assert queue_names(conn) == ["default"]


def test_create_refuses_an_invalid_name(cli, conn):
    result = cli("queue", "create", "q" * 58)
    assert_clean_error(result, 2, "too long")
    assert queue_names(conn) == []


def test_list_with_no_queues(cli):
    result = cli("queue", "list")
    assert result.code == 0, result
    assert result.out == ""
    assert "queue create" in result.err
    assert cli("queue", "list", "--json").json() == []
