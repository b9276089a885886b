"""Agent params, and the step and event names the agent's durable layout uses."""

from __future__ import annotations

import pytest

from absurd_tui.agent.conversation import (
    AgentParamsError,
    AgentSpec,
    Planner,
    StepNames,
    ToolCall,
    answer_event_name,
    answer_text,
)


def test_params_defaults_and_validation():
    spec = AgentSpec.parse({"prompt": "Hi"})
    assert (spec.prompt, spec.model, spec.max_iterations, spec.system) == ("Hi", None, 20, None)
    full = AgentSpec.parse(
        {
            "prompt": "Hi",
            "model": " demo ",
            "max_iterations": 3,
            "system": "S",
            "ask_human_timeout": 60,
        }
    )
    assert (full.model, full.max_iterations, full.system, full.ask_human_timeout) == (
        "demo",
        3,
        "S",
        60,
    )

    cases = [
        (None, "JSON object"),
        ({}, 'non-empty "prompt"'),
        ({"prompt": "   "}, 'non-empty "prompt"'),
        ({"prompt": 5}, 'non-empty "prompt"'),
        ({"prompt": "x", "max_iterations": 0}, '"max_iterations" must be a whole number from 1'),
        ({"prompt": "x", "max_iterations": "3"}, '"max_iterations" must be a whole number'),
        ({"prompt": "x", "max_iterations": True}, '"max_iterations" must be a whole number'),
        ({"prompt": "x", "model": ""}, '"model" must be a model name'),
        ({"prompt": "x", "system": 1}, '"system" must be a string'),
        ({"prompt": "x", "max_iteration": 3}, "Unknown agent param(s) 'max_iteration'"),
    ]
    for params, message in cases:
        with pytest.raises(AgentParamsError) as caught:
            AgentSpec.parse(params)
        assert message in str(caught.value), params


def test_step_names_follow_the_sdk_numbering():
    names = StepNames()
    assert [
        names.next("iteration"),
        names.next("tool:x"),
        names.next("iteration"),
        names.next("iteration"),
    ] == [
        "iteration",
        "tool:x",
        "iteration#2",
        "iteration#3",
    ]


def test_planner_names_steps_and_answer_events_in_order():
    planner = Planner(
        "T1", AgentSpec.parse({"prompt": "p", "ask_human_timeout": 30, "max_sleep_seconds": 60})
    )
    assert planner.iteration_step() == "iteration"
    weather = planner.tool(ToolCall("a", "get_weather", {"location": "Paris"}))
    assert (weather.kind, weather.base_step, weather.step) == (
        "function",
        "tool:get_weather",
        "tool:get_weather",
    )
    ask = planner.tool(ToolCall("b", "ask_human", {"question": " Which city? "}))
    assert (ask.kind, ask.step, ask.event_name, ask.question, ask.timeout) == (
        "ask_human",
        "ask_human",
        "agent:T1:answer#1",
        "Which city?",
        30,
    )
    assert planner.iteration_step() == "iteration#2"
    again = planner.tool(ToolCall("c", "get_weather", {"location": "Rome"}))
    assert again.step == "tool:get_weather#2"
    second = planner.tool(ToolCall("d", "ask_human", {"question": "Sure?", "timeout_seconds": 5}))
    assert (second.step, second.event_name, second.timeout) == (
        "ask_human#2",
        "agent:T1:answer#2",
        5,
    )
    nap = planner.tool(ToolCall("e", "sleep", {"seconds": 1.5, "reason": "waiting"}))
    assert (nap.kind, nap.step, nap.seconds, nap.reason) == ("sleep", "sleep", 1.5, "waiting")
    assert nap.sleep_result().content == "Slept for 1.5 seconds (waiting)."

    # Invalid waiting-tool input takes no step and no question number.
    for call, message in [
        (ToolCall("f", "ask_human", {}), 'needs a non-empty "question"'),
        (ToolCall("g", "ask_human", {"question": "q", "timeout_seconds": 0}), "at least 1"),
        (ToolCall("h", "sleep", {"seconds": "soon"}), 'needs "seconds"'),
        (ToolCall("i", "sleep", {"seconds": 61, "reason": "r"}), "between 0 and 60"),
    ]:
        planned = planner.tool(call)
        assert (planned.kind, planned.step) == ("invalid", None)
        result = planned.invalid_result()
        assert result.is_error and message in result.content and result.tool_use_id == call.id
    assert (
        planner.tool(ToolCall("j", "ask_human", {"question": "Last?"})).event_name
        == "agent:T1:answer#3"
    )
    assert planner.tool(ToolCall("k", "sleep", {"seconds": 0, "reason": "r"})).step == "sleep#2"


def test_answer_payloads():
    assert answer_event_name("0190-abc", 2) == "agent:0190-abc:answer#2"
    assert answer_text({"answer": "Paris"}) == "Paris"
    assert answer_text("Rome") == "Rome"
    assert answer_text({"city": "Oslo"}) == '{"city": "Oslo"}'
    assert answer_text(None) == "(an empty answer)"


def test_register_agent_is_idempotent_and_keeps_a_moved_agent():
    from absurd_tui.agent.task import register_agent, run_agent
    from absurd_tui.agent.tools import ToolRegistry
    from absurd_tui.sdk.registry import TaskRegistry

    registry = TaskRegistry()
    first = register_agent(registry)
    assert (first.name, first.queue, first.handler, first.default_max_attempts) == (
        "agent",
        "agents",
        run_agent,
        10,
    )
    assert register_agent(registry) is first
    moved = register_agent(registry, queue="mine")
    assert moved.queue == "mine"
    # A later default registration (e.g. the built-ins of `absurd-tui worker`) keeps it.
    assert register_agent(registry) is moved
    tools = ToolRegistry()
    custom = register_agent(registry, queue="mine", tools=tools)
    assert custom.handler.func is run_agent and custom.handler.keywords == {"tools": tools}
    assert register_agent(registry) is custom
    assert register_agent(registry, queue="agents").queue == "agents"
