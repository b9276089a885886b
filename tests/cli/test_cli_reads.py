"""absurd-tui tasks, show, events and workers: tables for people, --json for scripts."""

from __future__ import annotations

import json

import pytest

from absurd_tui.sdk import Absurd, TaskRegistry

from .helpers import assert_clean_error


def spawn(conn, name: str, params=None, queue: str = "default") -> str:
    row = conn.execute(
        "SELECT task_id FROM absurd.spawn_task(%s, %s, %s, '{\"max_attempts\": 1}')",
        (queue, name, json.dumps(params if params is not None else {})),
    ).fetchone()
    return str(row[0])


@pytest.fixture
def waiting_task(conn, default_queue):
    """A task that ran two steps named alike, then began waiting for event "go"."""
    registry = TaskRegistry()
    resumed = []

    def handler(params, ctx):
        ctx.step("fetch", lambda: {"page": 1})
        ctx.step("fetch", lambda: {"page": 2})
        payload = ctx.await_event("go")
        resumed.append(payload)
        return {"got": payload}

    registry.register("pager", handler, queue="default")
    client = Absurd(conn, queue_name="default", registry=registry)
    task_id = client.spawn("pager", {"pages": 2})["task_id"]
    client.work_batch(worker_id="test-worker")
    return client, task_id, resumed


def test_tasks_table_filters_and_json(cli, conn, default_queue):
    ids = [spawn(conn, "alpha"), spawn(conn, "alpha"), spawn(conn, "beta")]
    result = cli("tasks")
    assert result.code == 0, result
    lines = result.out.splitlines()
    assert lines[0].split() == [
        "ID",
        "QUEUE",
        "NAME",
        "STATE",
        "ATTEMPT",
        "STEP",
        "UPDATED",
        "WORKER",
    ]
    assert len(lines) == 4
    # Newest first, shown by the short id the TUI uses (the id's last 12 digits).
    assert [line.split()[0] for line in lines[1:]] == [i[-12:] for i in reversed(ids)]
    assert lines[1].split()[1:5] == ["default", "beta", "pending", "1/1"]

    alphas = cli("tasks", "--name", "al", "--json").json()
    assert sorted(t["task_id"] for t in alphas) == sorted(ids[:2])
    assert {t["task_name"] for t in alphas} == {"alpha"}
    assert cli("tasks", "--state", "completed", "--json").json() == []

    limited = cli("tasks", "--limit", "1")
    assert limited.code == 0, limited
    assert len(limited.out.splitlines()) == 2
    assert "Showing 1 of 3" in limited.err


def test_tasks_bad_filters(cli, default_queue):
    assert_clean_error(cli("tasks", "--queue", "nope"), 2, 'Unknown queue "nope"')
    assert_clean_error(cli("tasks", "--state", "bogus"), 2, "invalid choice")
    assert_clean_error(cli("tasks", "--limit", "0"), 2, "--limit")
    assert_clean_error(cli("events", "--queue", "nope"), 2, 'Unknown queue "nope"')
    assert_clean_error(cli("queue"), 2, "ACTION")


def test_show_a_waiting_task_then_emit_and_finish(cli, waiting_task):
    client, task_id, resumed = waiting_task
    shown = cli("show", task_id[:18])
    assert shown.code == 0, shown
    out = shown.out
    assert task_id in out and "pager" in out and "sleeping" in out
    assert '"pages": 2' in out
    assert "fetch#2" in out and '{"page": 2}' in out
    waiting = out.split("waiting for:")[1]
    assert "go" in waiting and "$awaitEvent:go" in waiting

    detail = cli("show", task_id, "--json").json()
    assert [c["name"] for c in detail["checkpoints"]] == ["fetch", "fetch#2"]
    assert [w["event_name"] for w in detail["waits"]] == ["go"]
    assert [(r["attempt"], r["state"], r["available_at"]) for r in detail["runs"]] == [
        (1, "sleeping", None)
    ]

    events = cli("events", "--json").json()
    assert [(w["task_id"], w["event_name"]) for w in events["waits"]] == [(task_id, "go")]
    assert events["events"] == []
    table = cli("events")
    assert table.code == 0, table
    assert task_id[-12:] in table.out and "no events emitted" in table.out

    emitted = cli("emit", "go", "--payload", '{"ok": true}')
    assert emitted.code == 0, emitted
    events = cli("events", "--json").json()
    assert events["waits"] == []
    assert [(e["event_name"], e["payload"]) for e in events["events"]] == [("go", {"ok": True})]

    client.work_batch(worker_id="test-worker")
    assert resumed == [{"ok": True}]
    done = cli("show", task_id, "--json").json()
    assert done["state"] == "completed"
    assert done["result"] == {"got": {"ok": True}}
    finished = cli("show", task_id)
    assert "result:" in finished.out and '"got"' in finished.out


def test_show_a_failure_with_its_traceback(cli, conn, default_queue):
    registry = TaskRegistry()

    def broken(params, ctx):
        raise KeyError("missing-key")

    registry.register("broken", broken, queue="default")
    client = Absurd(conn, queue_name="default", registry=registry)
    task_id = client.spawn("broken", {}, max_attempts=1)["task_id"]
    client.work_batch()
    out = cli("show", task_id).out
    failure = out.split("last failure:")[1]
    assert "KeyError" in failure and "missing-key" in failure
    assert "Traceback" in failure and "in broken" in failure
    assert "failed" in out.split("runs:")[1]


def test_user_data_is_shown_as_plain_text(cli, conn, default_queue):
    hostile = "\x1b[31mred\x1b[0m [bold red]x[/] [link=http://example.com]y[/link] \u202eevil\x07"
    task_id = spawn(conn, "name\x1b]0;title\x07", {"text": hostile})
    for args in (("show", task_id), ("tasks",), ("events",)):
        result = cli(*args)
        assert result.code == 0, result
        for raw in ("\x1b", "\x07", "\u202e"):
            assert raw not in result.out, (args, raw)
    shown = cli("show", task_id).out
    # Params are shown as JSON, whose escapes (\u001b) make the control characters
    # visible; what JSON leaves raw (bidi overrides) is escaped by the CLI.
    assert "\\u001b[31mred\\u001b[0m [bold red]x[/] [link=http://example.com]y[/link]" in shown
    assert "\\u202eevil\\u0007" in shown
    assert "name\\x1b]0;title\\x07" in shown
    listed = cli("tasks").out
    assert "name\\x1b]0;title\\x07" in listed

    as_json = cli("show", task_id, "--json")
    assert "\x1b" not in as_json.out and "\u202e" not in as_json.out
    assert as_json.json()["params"] == {"text": hostile}


def test_workers_seen_in_the_database(cli, conn, default_queue):
    spawn(conn, "long")
    conn.execute("SELECT * FROM absurd.claim_task('default', 'host-b:4242', 60, 1)")
    seen = cli("workers", "--json").json()
    assert [(w["worker"], w["queues"], w["running"]) for w in seen] == [
        ("host-b:4242", ["default"], 1)
    ]
    table = cli("workers")
    assert "host-b:4242" in table.out


def test_reads_on_an_empty_database(cli, default_queue):
    assert cli("tasks", "--json").json() == []
    empty = cli("tasks")
    assert empty.code == 0 and empty.out == "" and "No tasks" in empty.err
    assert cli("events", "--json").json() == {"waits": [], "events": []}
    assert cli("workers", "--json").json() == []
