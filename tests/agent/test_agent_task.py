"""The agent task end to end: real PostgreSQL, real worker threads, the real
``anthropic`` client talking to the local stand-in Messages server."""

from __future__ import annotations

import json

import pytest
from support import wait_until

from absurd_tui.agent import weather
from absurd_tui.agent.conversation import answer_event_name
from absurd_tui.agent.task import AGENT_QUEUE, AGENT_TASK, answer_question, spawn_agent
from absurd_tui.agent.transcript import load_transcript, transcript_from_detail
from absurd_tui.db import reads
from absurd_tui.sdk import Absurd

from .fake_anthropic import FakeAnthropic, error, reply, text, tool_use
from .fake_weather import FakeOpenMeteo
from .helpers import (
    FAST_RETRY,
    TEST_KEY,
    agent_registry,
    detail,
    running_workers,
    wait_for_state,
)

MODEL = "claude-haiku-4-5"


@pytest.fixture
def claude_env(monkeypatch):
    """Point the real anthropic client at a stand-in server given later."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", TEST_KEY)

    def use(fake: FakeAnthropic) -> None:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)

    return use


def spawn(conn, prompt="What is the weather in Paris?", **kw):
    kw.setdefault("model", MODEL)
    kw.setdefault("retry_strategy", FAST_RETRY)
    return spawn_agent(conn, prompt, **kw)


def test_a_conversation_with_tool_use(conn, db_dsn, claude_env, monkeypatch):
    script = {
        1: [
            reply(
                text("Let me look that up."),
                tool_use("toolu_w", "get_weather", {"location": "Paris"}),
                tool_use("toolu_t", "current_time", {}),
                input_tokens=100,
                output_tokens=20,
            )
        ],
        2: [reply(text("It is 7.5 °C and overcast in Paris."), input_tokens=180, output_tokens=15)],
    }
    with FakeAnthropic(script) as fake, FakeOpenMeteo() as meteo:
        claude_env(fake)
        monkeypatch.setenv(weather.BASE_URL_ENV, meteo.base_url)
        task_id = spawn(conn, system="Answer in one sentence.")
        with running_workers(db_dsn):
            task = wait_for_state(conn, task_id, "completed", "failed")
        assert fake.turns() == [1, 2]
        first, second = fake.requests

    assert task.state == "completed", task.failure
    assert task.result == {
        "answer": "It is 7.5 °C and overcast in Paris.",
        "iterations": 2,
        "usage": {"input_tokens": 280, "output_tokens": 35},
        "model": MODEL,
        "stop_reason": "end_turn",
    }
    assert first.body["system"] == "Answer in one sentence."
    assert first.body["messages"] == [{"role": "user", "content": "What is the weather in Paris?"}]
    # The second request carries the rebuilt history: prompt, the turn, the tool results.
    prompt, assistant, results = second.body["messages"]
    assert prompt == first.body["messages"][0]
    assert assistant == {"role": "assistant", "content": list(script[1][0].content)}
    assert results["role"] == "user"
    by_id = second.tool_results()
    assert list(by_id) == ["toolu_w", "toolu_t"]
    assert json.loads(by_id["toolu_w"]["content"])["conditions"] == "overcast"
    assert "utc" in json.loads(by_id["toolu_t"]["content"])
    assert not any(block.get("is_error") for block in by_id.values())

    # One checkpoint per turn and per tool call; a turn's checkpoint holds that turn only.
    values = task.checkpoints
    assert set(values) == {"iteration", "tool:get_weather", "tool:current_time", "iteration#2"}
    assert values["iteration"] == {
        "role": "assistant",
        "content": list(script[1][0].content),
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 100, "output_tokens": 20},
        "model": MODEL,
    }
    assert values["tool:get_weather"]["tool_use_id"] == "toolu_w"
    assert values["iteration#2"]["content"] == [text("It is 7.5 °C and overcast in Paris.")]

    transcript = load_transcript(conn, AGENT_QUEUE, task_id)
    assert [e.kind for e in transcript.entries] == [
        "prompt",
        "assistant",
        "tool_call",
        "tool_result",
        "tool_call",
        "tool_result",
        "final",
    ]
    assert transcript.entries[-1].text == "It is 7.5 °C and overcast in Paris."
    assert transcript.finished and transcript.iterations == 2
    # The TUI builds it from its TaskDetail read model: the same conversation.
    from_detail = transcript_from_detail(reads.task_detail(conn, AGENT_QUEUE, task_id))
    assert from_detail.entries == transcript.entries and from_detail.usage == transcript.usage


def test_ask_human_suspends_until_the_answer_event(conn, db_dsn, claude_env):
    script = {
        1: [reply(tool_use("toolu_q", "ask_human", {"question": "What is your name?"}))],
        2: [reply(text("Hello, Ada!"))],
    }
    with FakeAnthropic(script) as fake:
        claude_env(fake)
        task_id = spawn(conn, "Greet me by name.")
        event = answer_event_name(task_id, 1)
        with running_workers(db_dsn):
            waiting = wait_until(
                lambda: (d := detail(conn, task_id)).state == "sleeping" and d.waits and d,
                timeout=30,
                what="the agent to wait for an answer",
            )
            [wait] = waiting.waits
            assert (wait["event_name"], wait["step_name"]) == (event, "ask_human")
            transcript = load_transcript(conn, AGENT_QUEUE, task_id)
            assert transcript.pending_question is not None
            assert transcript.pending_question.event_name == event
            assert transcript.pending_question.question == "What is your name?"
            assert transcript.entries[-1].kind == "waiting_human"
            from_detail = transcript_from_detail(reads.task_detail(conn, AGENT_QUEUE, task_id))
            assert from_detail.pending_question == transcript.pending_question
            assert from_detail.pending_question.waiting_since is not None
            assert fake.turns() == [1]  # asleep: no model call while nobody answered

            with pytest.raises(ValueError, match="answer is empty"):
                answer_question(conn, AGENT_QUEUE, event, "  ")
            answer_question(conn, AGENT_QUEUE, event, "Ada")
            task = wait_for_state(conn, task_id, "completed", "failed")
        assert fake.turns() == [1, 2]
        answer = fake.requests[1].tool_results()["toolu_q"]

    assert task.state == "completed" and task.result["answer"] == "Hello, Ada!"
    assert answer["content"] == "The person answered: Ada" and not answer.get("is_error")
    assert task.checkpoints["ask_human"] == {"answer": "Ada"}


def test_ask_human_timeout_tells_the_model_no_answer_came(conn, db_dsn, claude_env):
    script = {
        1: [reply(tool_use("toolu_q", "ask_human", {"question": "Still there?"}))],
        2: [reply(text("Nobody answered, so I stopped."))],
    }
    with FakeAnthropic(script) as fake:
        claude_env(fake)
        task_id = spawn(conn, "Check on me.", ask_human_timeout=1)
        with running_workers(db_dsn):
            task = wait_for_state(conn, task_id, "completed", "failed")
        result = fake.requests[1].tool_results()["toolu_q"]
    assert task.state == "completed"
    assert result["is_error"] is True
    assert (
        result["content"]
        == "No answer came within 1 second; the person did not reply to: Still there?"
    )
    transcript = load_transcript(conn, AGENT_QUEUE, task_id)
    assert [(e.kind, e.is_error) for e in transcript.entries if e.kind == "tool_result"] == [
        ("tool_result", True)
    ]


def test_rate_limits_and_server_errors_retry_the_iteration(conn, db_dsn, claude_env):
    script = {
        1: [error(429, message="slow down"), reply(tool_use("toolu_t", "current_time", {}))],
        2: [error(500), error(529), reply(text("Done."))],
    }
    with FakeAnthropic(script) as fake:
        claude_env(fake)
        task_id = spawn(conn, "What time is it?")
        with running_workers(db_dsn):
            task = wait_for_state(conn, task_id, "completed", "failed")
        turns = fake.turns()
    assert task.state == "completed", task.failure
    # Each failed call failed its attempt; the turn that succeeded was never asked again.
    assert turns == [1, 1, 2, 2, 2]
    assert [run["state"] for run in task.runs] == ["failed", "failed", "failed", "completed"]
    reasons = [run["failure_reason"]["message"] for run in task.runs[:3]]
    assert "429 rate_limit_error: slow down" in reasons[0]
    assert "500 api_error" in reasons[1] and "529 overloaded_error" in reasons[2]
    assert set(task.checkpoints) == {"iteration", "tool:current_time", "iteration#2"}
    assert task.result["iterations"] == 2


def test_an_authentication_error_fails_the_task_without_retries(conn, db_dsn, claude_env):
    with FakeAnthropic({1: [error(401, message="invalid x-api-key")]}) as fake:
        claude_env(fake)
        task_id = spawn(conn, "Hello?")
        with running_workers(db_dsn):
            task = wait_for_state(conn, task_id, "failed", "completed")
        assert fake.turns() == [1]
    assert task.state == "failed"
    reason = task.failure
    assert len(task.runs) == 1, "a rejected credential must not be retried"
    assert reason["name"] == "AgentFailure" and reason["retryable"] is False
    assert "401 authentication_error: invalid x-api-key" in reason["message"]
    assert "ANTHROPIC_API_KEY" in reason["message"] and TEST_KEY not in json.dumps(reason)
    transcript = load_transcript(conn, AGENT_QUEUE, task_id)
    assert transcript.entries[-1].kind == "failed" and "401" in transcript.entries[-1].text


def test_params_that_cannot_run_fail_the_task_without_retries(conn, db_dsn):
    client = Absurd(conn, queue_name=AGENT_QUEUE, registry=agent_registry())
    client.create_queue(AGENT_QUEUE)
    task_id = client.spawn(AGENT_TASK, {"prompt": "  "}, max_attempts=5, retry_strategy=FAST_RETRY)[
        "task_id"
    ]
    with running_workers(db_dsn):
        task = wait_for_state(conn, task_id, "failed", "completed")
    assert len(task.runs) == 1 and task.max_attempts == 5, (
        "failed for good without touching max_attempts"
    )
    assert 'The agent needs a non-empty "prompt" string' in task.failure["message"]
    with pytest.raises(ValueError, match='non-empty "prompt"'):
        spawn_agent(conn, "")


def test_max_iterations_stops_the_loop(conn, db_dsn, claude_env):
    script = {
        1: [reply(tool_use("toolu_1", "current_time", {}))],
        2: [reply(text("Once more."), tool_use("toolu_2", "current_time", {}))],
    }
    with FakeAnthropic(script) as fake:
        claude_env(fake)
        task_id = spawn(conn, "Loop forever.", max_iterations=2)
        with running_workers(db_dsn):
            task = wait_for_state(conn, task_id, "completed", "failed")
        assert fake.turns() == [1, 2]
    assert task.result["stop_reason"] == "max_iterations"
    assert task.result["iterations"] == 2 and task.result["answer"] == "Once more."
    # The last turn's tool call is not run: nobody would read its result.
    assert set(task.checkpoints) == {"iteration", "tool:current_time", "iteration#2"}


def test_the_demo_model_end_to_end(conn, db_dsn, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv(weather.BASE_URL_ENV, raising=False)  # the real, unreachable service
    client = Absurd(conn, queue_name=AGENT_QUEUE, registry=agent_registry())
    client.create_queue(AGENT_QUEUE)
    # No model in the params: the worker picks one (demo, without a key) in a step.
    task_id = client.spawn(AGENT_TASK, {"prompt": "Plan a picnic."})["task_id"]
    with running_workers(db_dsn):
        transcript = wait_until(
            lambda: (t := load_transcript(conn, AGENT_QUEUE, task_id)).pending_question and t,
            timeout=30,
            what="the demo to ask its question",
        )
        assert transcript.model_label == "demo (offline)"
        # A bare JSON string is an answer too (e.g. `absurd-tui emit ... --payload '"Lyon"'`).
        client.emit_event(transcript.pending_question.event_name, "Lyon", queue_name=AGENT_QUEUE)
        task = wait_for_state(conn, task_id, "completed", "failed")
    assert task.state == "completed", task.failure
    values = task.checkpoints
    assert values["model"] == "demo"
    assert {
        "iteration",
        "tool:current_time",
        "ask_human",
        "tool:get_weather",
        "sleep",
        "iteration#5",
    } <= set(values)
    answer = task.result["answer"]
    assert "not Claude" in answer and "Plan a picnic." in answer and "weather in Lyon" in answer
    assert "could not be reached" in answer  # the weather tool's offline error, reported
    assert task.result["model"] == "demo" and task.result["iterations"] == 5
    final = load_transcript(conn, AGENT_QUEUE, task_id)
    assert [e.kind for e in final.entries] == ["prompt"] + [
        "assistant",
        "tool_call",
        "tool_result",
    ] * 4 + ["final"]
    assert final.entries[-1].text == answer
