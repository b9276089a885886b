"""absurd-tui spawn and emit: what they store, and bad input that stores nothing."""

from __future__ import annotations

import json
import uuid

from psycopg import sql
from psycopg.rows import dict_row

from .helpers import assert_clean_error


def tasks(conn, queue: str = "default") -> list[dict]:
    return (
        conn.cursor(row_factory=dict_row)
        .execute(
            sql.SQL(
                "SELECT task_id, task_name, params, headers, retry_strategy, max_attempts, "
                "cancellation, idempotency_key, state FROM {} ORDER BY task_id"
            ).format(sql.Identifier("absurd", f"t_{queue}"))
        )
        .fetchall()
    )


def test_spawn_prints_the_id_and_stores_everything(cli, conn, default_queue):
    result = cli(
        "spawn",
        "greet",
        "--params",
        '{"name": "Ada", "lang": "fr"}',
        "-P",
        "lang=en",
        "-P",
        "times:=3",
        "--max-attempts",
        "2",
        "--headers",
        '{"trace": "t-1"}',
        "--retry-strategy",
        '{"kind": "fixed", "base_seconds": 5}',
        "--cancellation",
        '{"max_delay": 60}',
    )
    assert result.code == 0, result
    task_id = uuid.UUID(result.out.strip())
    [task] = tasks(conn)
    assert task["task_id"] == task_id
    assert task["task_name"] == "greet"
    assert task["params"] == {"name": "Ada", "lang": "en", "times": 3}
    assert task["headers"] == {"trace": "t-1"}
    assert task["retry_strategy"] == {"kind": "fixed", "base_seconds": 5}
    assert task["max_attempts"] == 2
    assert task["cancellation"] == {"max_delay": 60}
    assert task["state"] == "pending"


def test_spawn_into_a_named_queue_with_params_from_a_file_and_stdin(cli, conn, tmp_path):
    conn.execute("SELECT absurd.create_queue('mail')")
    params_file = tmp_path / "params.json"
    params_file.write_text('{"to": "ada@example.com"}', encoding="utf-8")
    from_file = cli("spawn", "send", "--queue", "mail", "--params", f"@{params_file}")
    from_stdin = cli("spawn", "send", "-q", "mail", "--params", "@-", input='{"tags": ["a", 1]}')
    assert from_file.code == from_stdin.code == 0, (from_file, from_stdin)
    stored = {str(t["task_id"]): t["params"] for t in tasks(conn, "mail")}
    assert stored == {
        from_file.out.strip(): {"to": "ada@example.com"},
        from_stdin.out.strip(): {"tags": ["a", 1]},
    }


def test_spawn_json_output_and_idempotency_key(cli, conn, default_queue):
    first = cli("spawn", "report", "--idempotency-key", "daily-2031-03-04", "--json")
    assert first.code == 0, first
    data = first.json()
    assert data["created"] is True and data["attempt"] == 1 and data["queue"] == "default"
    again = cli("spawn", "report", "--idempotency-key", "daily-2031-03-04")
    assert again.code == 0, again
    assert again.out.strip() == data["task_id"]
    assert "idempotency key" in again.err
    assert len(tasks(conn)) == 1


def test_spawn_batch_spawns_one_task_per_line(cli, conn, default_queue):
    lines = "\n".join(json.dumps({"n": n}) for n in range(5)) + "\n\n"
    result = cli("spawn", "count", "--batch", "-", input=lines)
    assert result.code == 0, result
    ids = result.out.split()
    assert len(ids) == 5
    stored = {str(t["task_id"]): t["params"] for t in tasks(conn)}
    assert [stored[i] for i in ids] == [{"n": n} for n in range(5)]


SPAWN_BAD_INPUT = [
    (("--params", "{bad"), "--params is not valid JSON"),
    (("--params", "@/nonexistent/params.json"), "Cannot read --params"),
    (("-P", "novalue"), "key=value"),
    (("-P", "n:=[1,"), "-P n is not valid JSON"),
    (("--params", "[1]", "-P", "a=b"), "must then be a JSON object"),
    (("--headers", "[1]"), "--headers must be a JSON object"),
    (("--retry-strategy", "{"), "--retry-strategy is not valid JSON"),
    (("--retry-strategy", '{"base_seconds": 3}'), "kind"),
    (("--max-attempts", "0"), "--max-attempts"),
    (("--queue", "nope"), 'Unknown queue "nope"'),
    (("--batch", "-", "--params", "{}"), "--batch"),
]


def test_spawn_bad_input_spawns_nothing(cli, conn, default_queue):
    for args, needle in SPAWN_BAD_INPUT:
        result = cli("spawn", "greet", *args)
        assert_clean_error(result, 2, needle)
        assert tasks(conn) == [], args


def test_spawn_batch_with_one_bad_line_spawns_nothing(cli, conn, default_queue):
    result = cli("spawn", "count", "--batch", "-", input='{"n": 1}\n{"n": \n{"n": 3}\n')
    assert_clean_error(result, 2, "Line 2")
    assert tasks(conn) == []


def test_emit_stores_the_event(cli, conn, default_queue):
    result = cli("emit", "order-paid", "--payload", '{"amount": 5}')
    assert result.code == 0, result
    payload = conn.execute(
        "SELECT payload FROM absurd.e_default WHERE event_name = 'order-paid'"
    ).fetchone()[0]
    assert payload == {"amount": 5}


def test_a_second_emit_says_the_first_one_wins(cli, conn, default_queue):
    assert cli("emit", "order-paid", "--payload", '{"amount": 5}').code == 0
    again = cli("emit", "order-paid", "--payload", '{"amount": 7}')
    assert again.code == 0, again
    assert "already emitted" in again.out and "first emit wins" in again.out
    payload = conn.execute(
        "SELECT payload FROM absurd.e_default WHERE event_name = 'order-paid'"
    ).fetchone()[0]
    assert payload == {"amount": 5}


def test_emit_bad_input_emits_nothing(cli, conn, default_queue):
    for args, needle in [
        (("--payload", "nope"), "--payload is not valid JSON"),
        (("--queue", "nope"), 'Unknown queue "nope"'),
        (("--payload", "@/nonexistent.json"), "Cannot read --payload"),
    ]:
        result = cli("emit", "order-paid", *args)
        assert_clean_error(result, 2, needle)
        assert conn.execute("SELECT count(*) FROM absurd.e_default").fetchone()[0] == 0, args


def test_spawn_of_a_name_nothing_registers_warns_and_spawns(cli, conn, default_queue):
    result = cli("spawn", "no-such-task")
    assert result.code == 0, result
    assert result.out.strip()  # the id, for scripts
    assert "warning: No task 'no-such-task' is registered in this process" in result.err
    assert "will wait on queue 'default'" in result.err
    assert (
        conn.execute(
            "SELECT count(*) FROM absurd.t_default WHERE task_name = 'no-such-task'"
        ).fetchone()[0]
        == 1
    )


def test_spawn_with_tasks_uses_the_registered_queue_and_attempts(cli, conn, tmp_path):
    module = tmp_path / "routed_tasks.py"
    module.write_text(
        "from absurd_tui.sdk.registry import register_task\n\n"
        "@register_task('routed-report', queue='reports', default_max_attempts=2)\n"
        "def routed_report(params, ctx):\n"
        "    return params\n"
    )
    assert cli("queue", "create", "reports").code == 0
    result = cli("spawn", "routed-report", "--tasks", str(module))
    assert result.code == 0, result
    assert "warning" not in result.err
    row = conn.execute(
        "SELECT max_attempts FROM absurd.t_reports WHERE task_name = 'routed-report'"
    ).fetchone()
    assert row == (2,)
