"""Model providers: the real ``anthropic`` client against the local stand-in server, and
the offline demo model."""

from __future__ import annotations

import socket

import pytest

from absurd_tui.agent.conversation import Turn
from absurd_tui.agent.models import (
    CODE_PROMPT,
    DEMO_LABEL,
    AnthropicModel,
    DemoModel,
    ModelRejectedError,
    TransientModelError,
    default_model_name,
    make_model,
    model_label,
    model_options,
    wants_ip_picture,
)
from absurd_tui.agent.tools import default_tools

from .fake_anthropic import FakeAnthropic, error, reply, text, tool_use

KEY = "sk-ant-test-0123456789"
USER = [{"role": "user", "content": "What is the weather in Paris?"}]


def claude(fake: FakeAnthropic, key: str = KEY) -> AnthropicModel:
    return AnthropicModel(
        "claude-haiku-4-5", env={"ANTHROPIC_API_KEY": key, "ANTHROPIC_BASE_URL": fake.base_url}
    )


def respond(model, messages=USER, system="Be brief."):
    return model.respond(
        system=system, messages=messages, tools=default_tools.specs(), max_tokens=256
    )


def test_a_tool_use_turn_round_trips_through_the_real_client():
    script = {
        1: [
            reply(
                text("Checking."),
                tool_use("toolu_1", "get_weather", {"location": "Paris"}),
                input_tokens=42,
                output_tokens=7,
            )
        ]
    }
    with FakeAnthropic(script) as fake:
        turn = respond(claude(fake))
        [request] = fake.requests
    assert turn.stop_reason == "tool_use"
    assert turn.content == (
        {"type": "text", "text": "Checking."},
        {
            "type": "tool_use",
            "id": "toolu_1",
            "name": "get_weather",
            "input": {"location": "Paris"},
        },
    )
    assert (turn.usage.input_tokens, turn.usage.output_tokens) == (42, 7)
    assert turn.model == "claude-haiku-4-5"
    assert Turn.from_json(turn.to_json()) == turn
    # Older clients send x-api-key, 2.x a bearer token: either way, our key.
    sent = request.headers.get("x-api-key") or request.headers.get(
        "authorization", ""
    ).removeprefix("Bearer ")
    assert sent == KEY
    assert request.body["model"] == "claude-haiku-4-5"
    assert request.body["system"] == "Be brief."
    assert request.body["max_tokens"] == 256
    assert request.body["messages"] == USER
    assert {t["name"] for t in request.body["tools"]} >= {
        "ask_human",
        "sleep",
        "get_weather",
        "current_time",
    }


@pytest.mark.parametrize("status", [429, 500, 503, 529])
def test_retryable_errors_are_transient_and_not_retried_by_the_client(status):
    with FakeAnthropic({1: [error(status)]}) as fake:
        with pytest.raises(TransientModelError, match=f"Anthropic API error {status}"):
            respond(claude(fake))
        # max_retries=0: durability (and backoff) is the engine's job, not the client's.
        assert len(fake.requests) == 1


@pytest.mark.parametrize(
    ("status", "hint"),
    [
        (401, "Check ANTHROPIC_API_KEY"),
        (400, "rejected the request: 400 invalid_request_error"),
        (404, "model name"),
    ],
)
def test_permanent_errors_are_rejections(status, hint):
    with FakeAnthropic({1: [error(status, message=f"bad key {KEY}")]}) as fake:
        with pytest.raises(ModelRejectedError) as caught:
            respond(claude(fake))
        assert len(fake.requests) == 1
    message = str(caught.value)
    assert hint in message
    assert KEY not in message and "***" in message  # the key never reaches a failure reason


def test_unreachable_endpoint_is_transient():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    model = AnthropicModel(
        "claude-haiku-4-5",
        env={"ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{port}"},
    )
    with pytest.raises(TransientModelError, match="Could not reach the Anthropic API"):
        respond(model)


def test_a_missing_key_is_a_rejection_without_any_request():
    with FakeAnthropic({1: [reply(text("hi"))]}) as fake:
        with pytest.raises(ModelRejectedError, match="ANTHROPIC_API_KEY is not set"):
            respond(claude(fake, key=""))
        assert fake.requests == []


def test_model_choice_and_labels():
    assert default_model_name({}) == "demo"
    assert default_model_name({"ANTHROPIC_API_KEY": " "}) == "demo"
    assert default_model_name({"ANTHROPIC_API_KEY": "k"}) == "claude-haiku-4-5"
    assert model_label("demo") == DEMO_LABEL == "demo (offline)"
    assert model_label("claude-sonnet-4-5") == "claude-sonnet-4-5"
    assert isinstance(make_model("demo"), DemoModel)
    offline = model_options({})
    assert [(o.name, o.available) for o in offline][:2] == [
        ("demo", True),
        ("claude-haiku-4-5", False),
    ]
    assert "ANTHROPIC_API_KEY is not set" in offline[1].note
    keyed = model_options({"ANTHROPIC_API_KEY": "k"})
    assert keyed[0].name == "claude-haiku-4-5" and all(o.available for o in keyed)
    assert keyed[-1].label == "demo (offline)"
    assert isinstance(make_model("claude-haiku-4-5", env={}), AnthropicModel)


def test_demo_model_script_is_deterministic_and_honest():
    demo = DemoModel()
    messages = [{"role": "user", "content": "Plan my afternoon"}]
    first = respond(demo, messages)
    assert first == respond(demo, messages)
    assert [c.name for c in first.tool_calls] == ["current_time"]
    assert "not Claude" in first.text

    def answer(turn: Turn, content: str, is_error: bool = False) -> None:
        messages.append(turn.message())
        [call] = turn.tool_calls
        block = {"type": "tool_result", "tool_use_id": call.id, "content": content}
        if is_error:
            block["is_error"] = True
        messages.append({"role": "user", "content": [block]})

    answer(first, '{"utc": "2026-11-26T15:00:00+00:00"}')
    second = respond(demo, messages)
    assert [(c.name, c.input) for c in second.tool_calls] == [
        ("ask_human", {"question": DemoModel.QUESTION})
    ]
    answer(second, "The person answered: Lyon")
    third = respond(demo, messages)
    assert [(c.name, c.input) for c in third.tool_calls] == [("get_weather", {"location": "Lyon"})]
    answer(third, "get_weather failed: the weather service could not be reached", is_error=True)
    fourth = respond(demo, messages)
    assert [c.name for c in fourth.tool_calls] == ["sleep"]
    answer(fourth, "Slept for 2 seconds (demonstrating a durable sleep).")
    final = respond(demo, messages)
    assert final.stop_reason == "end_turn" and final.tool_calls == []
    assert "not Claude" in final.text
    assert "Plan my afternoon" in final.text
    assert "2026-11-26T15:00:00+00:00" in final.text
    assert "weather in Lyon" in final.text and "could not be reached" in final.text
    assert (final.usage.input_tokens, final.usage.output_tokens) == (0, 0)


def test_the_demo_plays_the_code_example_only_when_asked_and_offered():
    assert wants_ip_picture(CODE_PROMPT)
    assert wants_ip_picture("Draw my IP, please") and not wants_ip_picture("Plan a picnic")
    demo = DemoModel()
    messages = [{"role": "user", "content": CODE_PROMPT}]
    first = respond(demo, messages)
    assert [c.name for c in first.tool_calls] == ["execute_python"]
    assert "/network/current-ip" in first.tool_calls[0].input["code"]
    without = [spec for spec in default_tools.specs() if spec["name"] != "execute_python"]
    fallback = demo.respond(system=None, messages=messages, tools=without, max_tokens=100)
    assert [c.name for c in fallback.tool_calls] == ["current_time"]
    # Offline (the host read failed), the picture says so instead of an address.
    messages += [
        first.message(),
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": first.tool_calls[0].id,
                    "content": "host read /network/current-ip failed: offline",
                    "is_error": True,
                }
            ],
        },
    ]
    second = respond(demo, messages)
    assert "IP unknown (offline)" in second.tool_calls[0].input["code"]
