"""The transcript builder on hand-written checkpoints: order, waits, markers, endings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from absurd_tui.agent.transcript import Wait, build_transcript

NOW = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)
TASK = "0190aaaa-0000-7000-8000-000000000001"
PARAMS = {"prompt": "Weather in Paris?", "model": "claude-haiku-4-5", "max_iterations": 5}


def turn(*content, stop="tool_use", tokens=(10, 5)):
    return {
        "role": "assistant",
        "content": list(content),
        "stop_reason": stop,
        "usage": {"input_tokens": tokens[0], "output_tokens": tokens[1]},
        "model": "claude-haiku-4-5",
    }


def text(value):
    return {"type": "text", "text": value}


def use(tool_id, name, tool_input):
    return {"type": "tool_use", "id": tool_id, "name": name, "input": tool_input}


FIRST = turn(
    text("Let me check."),
    use("t1", "get_weather", {"location": "Paris"}),
    use("t2", "ask_human", {"question": "Celsius or Fahrenheit?"}),
)
SECOND = turn(use("t3", "sleep", {"seconds": 5, "reason": "letting the clouds move"}))
THIRD = turn(text("It is 7.5 degrees Celsius and overcast."), stop="end_turn", tokens=(30, 12))
WEATHER = {"tool_use_id": "t1", "content": '{"temperature": "7.5 °C"}', "is_error": False}
WOKE = (NOW - timedelta(seconds=1)).isoformat()


def build(checkpoints, state, **kw):
    kw.setdefault("now", NOW)
    return build_transcript(
        kw.pop("params", PARAMS), checkpoints, task_id=TASK, queue="agents", state=state, **kw
    )


def summary(transcript):
    return [(e.kind, e.text) for e in transcript.entries]


def test_a_finished_conversation_in_order():
    checkpoints = {
        "iteration": FIRST,
        "tool:get_weather": WEATHER,
        "ask_human": {"answer": "Celsius"},
        "iteration#2": SECOND,
        "sleep": WOKE,
        "iteration#3": THIRD,
    }
    t = build(checkpoints, "completed", result={"answer": THIRD["content"][0]["text"]})
    assert summary(t) == [
        ("prompt", "Weather in Paris?"),
        ("assistant", "Let me check."),
        ("tool_call", "get_weather(location='Paris')"),
        ("tool_result", '{"temperature": "7.5 °C"}'),
        ("tool_call", "ask_human(question='Celsius or Fahrenheit?')"),
        ("tool_result", "The person answered: Celsius"),
        ("tool_call", "sleep(seconds=5, reason='letting the clouds move')"),
        ("tool_result", "Slept for 5 seconds (letting the clouds move)."),
        ("final", "It is 7.5 degrees Celsius and overcast."),
    ]
    assert t.finished and t.pending_question is None
    assert t.iterations == 3 and (t.usage.input_tokens, t.usage.output_tokens) == (50, 22)
    assert t.model_label == "claude-haiku-4-5"
    assert [e.step for e in t.entries if e.kind == "tool_result"] == [
        "tool:get_weather",
        "ask_human",
        "sleep",
    ]
    assert len({e.key for e in t.entries}) == len(t.entries)
    assert t.stable_entries == t.entries


def test_markers_while_it_runs():
    queued = build({}, "pending")
    assert summary(queued) == [
        ("prompt", "Weather in Paris?"),
        ("running", "Iteration 1: queued for a worker"),
    ]
    assert queued.stable_entries == queued.entries[:1]
    thinking = build({}, "running")
    assert (
        thinking.entries[-1].text == "Iteration 1: waiting for the model"
        and thinking.entries[-1].transient
    )
    retrying = build(
        {}, "sleeping", last_error="Anthropic API error 429 rate_limit_error: slow down; will retry"
    )
    assert retrying.entries[-1].text.startswith(
        "Iteration 1: will retry after an error: Anthropic API error 429"
    )
    tool_running = build({"iteration": FIRST}, "running")
    assert summary(tool_running)[-2:] == [
        ("tool_call", "get_weather(location='Paris')"),
        ("running", "Running tool get_weather"),
    ]
    # The ask_human call after the unfinished tool is not reached yet.
    assert tool_running.pending_question is None
    assert not any(
        e.kind == "tool_call" and e.tool_name == "ask_human" for e in tool_running.entries
    )


def test_waiting_for_a_human_answer():
    since = NOW - timedelta(minutes=3)
    waits = [Wait("ask_human", f"agent:{TASK}:answer#1", since, None)]
    t = build({"iteration": FIRST, "tool:get_weather": WEATHER}, "sleeping", waits=waits)
    last = t.entries[-1]
    assert (last.kind, last.text, last.event_name) == (
        "waiting_human",
        "Celsius or Fahrenheit?",
        f"agent:{TASK}:answer#1",
    )
    question = t.pending_question
    assert question is not None
    assert (question.question, question.event_name, question.queue, question.task_id) == (
        "Celsius or Fahrenheit?",
        f"agent:{TASK}:answer#1",
        "agents",
        TASK,
    )
    assert question.waiting_since == since and question.step == "ask_human"
    # Emitting the answer writes the checkpoint at once: the transcript moves on.
    answered = build(
        {"iteration": FIRST, "tool:get_weather": WEATHER, "ask_human": "Kelvin"}, "pending"
    )
    assert answered.pending_question is None
    assert summary(answered)[-2:] == [
        ("tool_result", "The person answered: Kelvin"),
        ("running", "Iteration 2: queued for a worker"),
    ]


def test_an_unanswered_question_that_timed_out():
    params = {**PARAMS, "ask_human_timeout": 30}
    t = build(
        {"iteration": FIRST, "tool:get_weather": WEATHER},
        "running",
        params=params,
        timed_out=["ask_human"],
    )
    result = t.entries[-2]
    assert result.kind == "tool_result" and result.is_error
    assert (
        result.text
        == "No answer came within 30 seconds; the person did not reply to: Celsius or Fahrenheit?"
    )
    assert t.pending_question is None


def test_a_durable_sleep_in_progress_and_done():
    base = {
        "iteration": FIRST,
        "tool:get_weather": WEATHER,
        "ask_human": "C",
        "iteration#2": SECOND,
    }
    wake = NOW + timedelta(seconds=4)
    asleep = build({**base, "sleep": wake.isoformat()}, "sleeping")
    last = asleep.entries[-1]
    assert (last.kind, last.text, last.until) == (
        "sleeping",
        "Sleeping 5 s: letting the clouds move",
        wake,
    )
    awake = build({**base, "sleep": WOKE}, "running")
    assert summary(awake)[-2:] == [
        ("tool_result", "Slept for 5 seconds (letting the clouds move)."),
        ("running", "Iteration 3: waiting for the model"),
    ]


def test_failure_cancellation_and_iteration_limit():
    failed = build(
        {"iteration": FIRST},
        "failed",
        failure={
            "name": "AgentFailure",
            "message": "Anthropic API rejected the request: 401 authentication_error",
        },
    )
    assert summary(failed)[-1] == (
        "failed",
        "The agent failed: Anthropic API rejected the request: 401 authentication_error",
    )
    assert not any(e.transient for e in failed.entries)
    cancelled = build({}, "cancelled")
    assert summary(cancelled) == [
        ("prompt", "Weather in Paris?"),
        ("cancelled", "The agent was cancelled."),
    ]
    limited = build({"iteration": FIRST}, "completed", params={**PARAMS, "max_iterations": 1})
    assert [e.kind for e in limited.entries] == [
        "prompt",
        "assistant",
        "tool_call",
        "tool_call",
        "stopped",
    ]
    assert "max_iterations" in limited.entries[-1].text


def test_params_that_cannot_run_an_agent():
    t = build(
        {},
        "failed",
        params={"prompt": ""},
        failure={"name": "AgentFailure", "message": "bad params"},
    )
    assert [e.kind for e in t.entries] == ["prompt", "error", "failed"]
    assert 'non-empty "prompt"' in t.entries[1].text


def test_the_demo_model_label_and_a_chosen_model():
    demo = build({}, "pending", params={"prompt": "p", "model": "demo"})
    assert demo.model_label == "demo (offline)"
    chosen = build({"model": "demo"}, "pending", params={"prompt": "p"})
    assert chosen.model == "demo" and chosen.model_label == "demo (offline)"
