"""``absurd-tui agent``: spawning, and --follow streaming the transcript with answers
typed on standard input (the entry point called in-process, against real PostgreSQL
and workers)."""

from __future__ import annotations

import io

import pytest
from support import wait_until

from absurd_tui.agent.conversation import answer_event_name
from absurd_tui.cli import main

from .helpers import detail


@pytest.fixture
def agent(db_dsn):
    """``absurd-tui agent ARGS --dsn <this test's database>``; returns the exit code."""

    def run(*argv: str) -> int:
        return main(["agent", *argv, "--dsn", db_dsn])

    return run


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ABSURD_TUI_WEATHER_URL", raising=False)


def test_follow_streams_the_demo_and_answers_from_stdin(agent, conn, offline, monkeypatch, capsys):
    # The first line is empty: the prompt is repeated rather than sending an empty answer.
    monkeypatch.setattr("sys.stdin", io.StringIO("\nLyon\n"))
    code = agent("Plan a picnic.\x1b[2J", "--follow")
    out = capsys.readouterr().out
    assert code == 0, out
    lines = out.splitlines()
    task_id = lines[0]
    assert lines[1] == f"Agent task {task_id} on queue agents, model demo (offline)"
    assert "\x1b" not in out and "You: Plan a picnic.\\x1b[2J" in out
    expected_in_order = [
        "  -> current_time(timezone='UTC')",
        '  <- {"utc": ',
        "  -> ask_human(question='Which city should I check the weather for?')",
        "  ? The agent asks: Which city should I check the weather for?",
        "Your answer> \n(type an answer and press Enter)\nYour answer> Lyon\n",
        "  <- The person answered: Lyon",
        "  -> get_weather(location='Lyon')",
        "  <- error: get_weather failed: the weather service could not be reached",
        "  -> sleep(",
        "  .. Sleeping 2 s: demonstrating a durable sleep (until ",
        "  <- Slept for 2 seconds (demonstrating a durable sleep).",
        "Answer: Demo answer from the offline scripted model (not Claude; no AI was called).",
        "-- done in 5 iteration(s); tokens: 0 in, 0 out",
    ]
    position = 0
    for expected in expected_in_order:
        found = out.find(expected, position)
        assert found >= 0, f"{expected!r} missing (or out of order) in:\n{out}"
        position = found + len(expected)
    assert detail(conn, task_id).state == "completed"


def test_follow_with_stdin_closed_leaves_the_agent_waiting(
    agent, conn, offline, monkeypatch, capsys
):
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    code = agent("Plan a picnic.", "--follow")
    out = capsys.readouterr().out
    task_id = out.splitlines()[0]
    assert code == 1
    event = answer_event_name(task_id, 1)
    assert "Standard input closed: the agent keeps waiting for an answer" in out
    assert f"absurd-tui emit '{event}' --queue agents" in out
    # The task is parked on its question (possibly after the worker finished suspending).
    task = wait_until(
        lambda: (d := detail(conn, task_id)).waits and d,
        timeout=30,
        what="the wait to be registered",
    )
    assert task.state == "sleeping" and task.waits[0]["event_name"] == event


def test_spawn_without_follow_prints_only_the_task_id(agent, conn, offline, capsys):
    code = agent("Summarise the news.", "--max-iterations", "3", "--system", "Be terse.")
    captured = capsys.readouterr()
    assert code == 0
    [task_id] = captured.out.split()
    assert "with model demo (offline)" in captured.err
    row = conn.execute(
        "SELECT params, state, max_attempts, retry_strategy FROM absurd.t_agents WHERE task_id = %s",
        (task_id,),
    ).fetchone()
    params, state, max_attempts, retry = row
    assert params == {
        "prompt": "Summarise the news.",
        "model": "demo",
        "max_iterations": 3,
        "system": "Be terse.",
    }
    assert state == "pending" and max_attempts == 10 and retry["kind"] == "exponential"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["   "], "The prompt is empty"),
        (
            ["Hi", "--model", "claude-haiku-4-5", "--follow"],
            "needs ANTHROPIC_API_KEY, which is not set here",
        ),
        (["Hi", "--queue", "nowhere"], 'Unknown queue "nowhere"'),
        (["Hi", "--tasks", "x"], "--tasks only applies with --follow"),
    ],
)
def test_bad_input_is_refused_and_spawns_nothing(agent, conn, offline, capsys, argv, message):
    code = agent(*argv)
    captured = capsys.readouterr()
    assert code == 2
    assert message in captured.err and captured.out == ""
    spawned = conn.execute("SELECT to_regclass('absurd.t_agents') IS NOT NULL").fetchone()[0]
    if spawned:
        assert conn.execute("SELECT count(*) FROM absurd.t_agents").fetchone()[0] == 0


def test_max_iterations_must_be_a_positive_number(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["agent", "Hi", "--max-iterations", "0"])
    assert exited.value.code == 2
    assert "must be from 1 to 1000" in capsys.readouterr().err
