"""The tool registry, the built-in function tools, and get_weather against a real
(unreachable) internet and a local stand-in of Open-Meteo."""

from __future__ import annotations

import json
import time

import pytest

from absurd_tui.agent import weather
from absurd_tui.agent.tools import ToolRegistry, default_tools, register_builtins, tool

from .fake_weather import FakeOpenMeteo


@pytest.fixture
def registry() -> ToolRegistry:
    reg = ToolRegistry()
    register_builtins(reg)
    return reg


ADD_SCHEMA = {
    "type": "object",
    "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
    "required": ["a", "b"],
}


def test_user_tool_is_offered_and_called(registry):
    @tool(registry=registry, input_schema=ADD_SCHEMA)
    def add(a, b):
        """Add two numbers."""
        return {"sum": a + b}

    spec = next(s for s in registry.specs() if s["name"] == "add")
    assert spec == {"name": "add", "description": "Add two numbers.", "input_schema": ADD_SCHEMA}
    result = registry.call("toolu_1", "add", {"a": 2, "b": 3.5})
    assert (result.tool_use_id, result.is_error) == ("toolu_1", False)
    assert json.loads(result.content) == {"sum": 5.5}
    assert result.block() == {
        "type": "tool_result",
        "tool_use_id": "toolu_1",
        "content": '{"sum": 5.5}',
    }


def test_bad_input_and_failures_become_error_results(registry):
    def explode(a, b):
        raise RuntimeError("disk on fire")

    registry.add(explode, description="Always fails.", input_schema=ADD_SCHEMA)
    missing = registry.call("t", "explode", {"a": 1})
    assert missing.is_error and "missing required 'b'" in missing.content
    wrong_type = registry.call("t", "explode", {"a": 1, "b": "two"})
    assert wrong_type.is_error and "'b' must be of type number" in wrong_type.content
    boolean = registry.call("t", "explode", {"a": True, "b": 1})
    assert boolean.is_error and "'a' must be of type number" in boolean.content
    extra = registry.call("t", "explode", {"a": 1, "b": 2, "c": 3})
    assert extra.is_error and "unexpected argument 'c'" in extra.content
    not_object = registry.call("t", "explode", ["a"])
    assert not_object.is_error and "JSON object" in not_object.content
    raised = registry.call("t", "explode", {"a": 1, "b": 2})
    assert raised.is_error and raised.content == "explode failed: disk on fire"
    assert raised.block()["is_error"] is True
    unknown = registry.call("t", "nope", {})
    assert (
        unknown.is_error
        and "Unknown tool 'nope'" in unknown.content
        and "current_time" in unknown.content
    )


def test_registration_rules(registry):
    def helper():
        """Does a thing."""

    with pytest.raises(ValueError, match="reserved"):
        registry.add(helper, name="ask_human")
    with pytest.raises(ValueError, match="1-64 letters"):
        registry.add(helper, name="has space")
    with pytest.raises(ValueError, match="type 'object'"):
        registry.add(helper, input_schema={"type": "string"})
    with pytest.raises(ValueError, match="needs a description"):
        registry.add(lambda: None, name="nodoc")
    registry.add(helper)
    registry.add(helper)  # the same function again: a no-op, so a module may be reloaded

    def other():
        """Another thing."""

    with pytest.raises(ValueError, match="already registered"):
        registry.add(other, name="helper")
    with pytest.raises(ValueError, match="waiting tool"):
        registry.call("t", "sleep", {"seconds": 1, "reason": "x"})


def test_default_tools_offer_the_builtins():
    assert {"ask_human", "sleep", "get_weather", "current_time"} <= set(default_tools.names())
    for spec in default_tools.specs():
        assert spec["input_schema"]["type"] == "object" and spec["description"]


def test_current_time(registry):
    result = registry.call("t", "current_time", {"timezone": "Asia/Tokyo"})
    value = json.loads(result.content)
    assert not result.is_error
    assert (
        value["timezone"] == "Asia/Tokyo"
        and value["local"].endswith("+09:00")
        and value["utc"].endswith("+00:00")
    )
    bad = registry.call("t", "current_time", {"timezone": "Mars/Olympus"})
    assert bad.is_error and "unknown time zone 'Mars/Olympus'" in bad.content


def test_weather_offline_is_an_error_result_not_a_crash(registry, monkeypatch):
    """This machine has no internet: the real Open-Meteo hosts cannot be reached."""
    monkeypatch.delenv(weather.BASE_URL_ENV, raising=False)
    started = time.monotonic()
    result = registry.call("t", "get_weather", {"location": "Paris"})
    assert time.monotonic() - started < weather.TIMEOUT_SECONDS * 2 + 1
    assert result.is_error
    assert result.content.startswith("get_weather failed: the weather service could not be reached")


def test_weather_from_the_stand_in_service(registry, monkeypatch):
    with FakeOpenMeteo() as fake:
        monkeypatch.setenv(weather.BASE_URL_ENV, fake.base_url)
        result = registry.call("t", "get_weather", {"location": "Paris"})
        assert not result.is_error, result.content
        value = json.loads(result.content)
        assert value["location"] == "Paris, Ile-de-France, France"
        assert value["conditions"] == "overcast"
        assert value["temperature"] == "7.5 °C" and value["wind_speed"] == "12.4 km/h"
        assert value["observed_at"] == "2026-11-26T15:00" and value["source"] == "Open-Meteo"
        search, forecast = fake.requests
        assert search[0] == "/v1/search" and search[1]["name"] == ["Paris"]
        assert forecast[0] == "/v1/forecast"
        assert forecast[1]["latitude"] == ["48.85341"] and forecast[1]["longitude"] == ["2.3488"]

        unknown = registry.call("t", "get_weather", {"location": "Atlantis"})
        assert unknown.is_error and "no place named 'Atlantis'" in unknown.content
        empty = registry.call("t", "get_weather", {"location": "  "})
        assert empty.is_error and "non-empty place name" in empty.content


def test_weather_service_error_is_reported(registry, monkeypatch):
    with FakeOpenMeteo(forecast_status=503) as fake:
        monkeypatch.setenv(weather.BASE_URL_ENV, fake.base_url)
        result = registry.call("t", "get_weather", {"location": "Paris"})
        assert result.is_error and "answered HTTP 503" in result.content


def test_huge_results_are_truncated(registry):
    registry.add(lambda: "x" * 150_000, name="huge", description="Returns a lot.")
    result = registry.call("t", "huge", {})
    assert len(result.content) < 100_100
    assert result.content.endswith("[truncated: 50000 more characters]")
