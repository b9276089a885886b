"""The agent's tools: a registry of Python functions with JSON schemas, and the built-ins.

Add a tool of your own in a module loaded with ``--tasks`` (so workers and the TUI know
it)::

    from absurd_tui.agent.tools import tool

    @tool(input_schema={
        "type": "object",
        "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
        "required": ["a", "b"],
    })
    def add(a: float, b: float) -> float:
        '''Add two numbers.'''
        return a + b

The function is called with the model's input as keyword arguments. Whatever it returns
(a string, or anything JSON-serialisable) becomes the tool result; an exception becomes
an error result the model sees, and never fails the task. Each call runs as its own
durable step, so a tool whose result was recorded is not run again after a crash; a
crash while it runs does run it again, as with any step.

Three built-ins are not functions but work the agent task performs itself: the durable
waits ``ask_human`` (waits for an event carrying a person's answer) and ``sleep`` (a
durable timer), and ``execute_python``, the sandboxed code interpreter
(``interpreter.py``). See ``conversation.py`` for how they map to steps and events.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from . import weather

ASK_HUMAN = "ask_human"
SLEEP = "sleep"
EXECUTE_PYTHON = "execute_python"
WAITING_TOOLS = frozenset({ASK_HUMAN, SLEEP})
TASK_TOOLS = WAITING_TOOLS | {EXECUTE_PYTHON}
"""Carried out by the agent task itself, not by a function of the registry."""

MAX_RESULT_CHARS = 100_000
"""Longer tool results are cut: they are checkpointed and sent with every later turn."""

# The Messages API's rule for tool names.
_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
    "null": (type(None),),
}


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    input_schema: Mapping[str, Any]
    fn: Callable[..., Any] | None = field(default=None, compare=False)
    """None for the built-ins the agent task carries out itself (waits, the sandbox)."""

    @property
    def waits(self) -> bool:
        return self.name in WAITING_TOOLS

    def spec(self) -> dict[str, Any]:
        """The tool as the Messages API expects it in ``tools``."""
        return {
            "name": self.name,
            "description": self.description,
            "input_schema": dict(self.input_schema),
        }


@dataclass(frozen=True)
class ToolResult:
    """What goes back to the model in a ``tool_result`` block."""

    tool_use_id: str
    content: str
    is_error: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"tool_use_id": self.tool_use_id, "content": self.content, "is_error": self.is_error}

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> ToolResult:
        return cls(
            str(value["tool_use_id"]), str(value["content"]), bool(value.get("is_error", False))
        )

    def block(self) -> dict[str, Any]:
        block: dict[str, Any] = {
            "type": "tool_result",
            "tool_use_id": self.tool_use_id,
            "content": self.content,
        }
        if self.is_error:
            block["is_error"] = True
        return block


class ToolRegistry:
    def __init__(self) -> None:
        self._tools: dict[str, Tool] = {}
        self.mounts: Any = None
        """The sandbox's mounts (``sandbox.MountRegistry``) once ``execute_python`` is offered."""

    def add(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        input_schema: Mapping[str, Any] | None = None,
    ) -> Tool:
        """Register ``fn`` as a tool; registering the same function again is a no-op."""
        name = name or fn.__name__
        description = (description or (fn.__doc__ or "").strip()).strip()
        schema = (
            dict(input_schema) if input_schema is not None else {"type": "object", "properties": {}}
        )
        _check_definition(name, description, schema)
        if name in TASK_TOOLS:
            raise ValueError(f"tool name {name!r} is reserved for a built-in tool")
        existing = self._tools.get(name)
        if existing is not None and existing.fn is not fn:
            raise ValueError(f"a different tool named {name!r} is already registered")
        added = Tool(name=name, description=description, input_schema=schema, fn=fn)
        self._tools[name] = added
        return added

    def _add_builtin(self, name: str, description: str, schema: Mapping[str, Any]) -> None:
        _check_definition(name, description, schema)
        self._tools[name] = Tool(name=name, description=description, input_schema=schema)

    def add_code_interpreter(self, mounts: Any = None) -> None:
        """Offer ``execute_python`` (the sandboxed code interpreter) with these mounts
        (a ``sandbox.MountRegistry``; the default ones if None)."""
        from .interpreter import INPUT_SCHEMA, describe
        from .sandbox import default_mounts

        self.mounts = mounts if mounts is not None else default_mounts
        self._add_builtin(EXECUTE_PYTHON, describe(self.mounts.selected(None)), INPUT_SCHEMA)

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def names(self) -> list[str]:
        return sorted(self._tools)

    def specs(self) -> list[dict[str, Any]]:
        return [self._tools[name].spec() for name in sorted(self._tools)]

    def call(self, tool_use_id: str, name: str, tool_input: Any) -> ToolResult:
        """Run a function tool; every failure becomes an error result for the model."""
        found = self._tools.get(name)
        if found is None:
            known = ", ".join(self.names()) or "none"
            return ToolResult(
                tool_use_id, f"Unknown tool {name!r}. Available tools: {known}.", is_error=True
            )
        if found.fn is None:
            kind = "waiting tool" if found.waits else "built-in tool"
            raise ValueError(
                f"{name!r} is a {kind}; the agent task carries it out, not the registry"
            )
        problem = input_problem(found.input_schema, tool_input)
        if problem:
            return ToolResult(tool_use_id, f"Invalid input for {name}: {problem}", is_error=True)
        try:
            value = found.fn(**tool_input)
        except Exception as exc:
            message = str(exc) or exc.__class__.__name__
            return ToolResult(tool_use_id, f"{name} failed: {message}", is_error=True)
        return ToolResult(tool_use_id, result_text(value))


def result_text(value: Any) -> str:
    if isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(value, ensure_ascii=False)
        except (TypeError, ValueError):
            text = str(value)
    if len(text) > MAX_RESULT_CHARS:
        text = (
            text[:MAX_RESULT_CHARS]
            + f"\n[truncated: {len(text) - MAX_RESULT_CHARS} more characters]"
        )
    return text


def input_problem(schema: Mapping[str, Any], value: Any) -> str | None:
    """A small check of the model's input against the top level of the tool's schema.

    Full JSON Schema validation is not needed: this catches what the model most often
    gets wrong (a missing or mistyped argument) with a message it can act on; the
    function itself guards anything deeper.
    """
    if not isinstance(value, dict):
        return "the input must be a JSON object"
    properties = schema.get("properties") or {}
    missing = [key for key in schema.get("required") or () if key not in value]
    if missing:
        return "missing required " + ", ".join(repr(key) for key in missing)
    for key, item in value.items():
        declared = properties.get(key)
        if declared is None:
            # Extra keyword arguments would only fail inside the function call, with a
            # less useful message, unless the schema explicitly allows them.
            if properties and schema.get("additionalProperties") is not True:
                return f"unexpected argument {key!r}; expected {', '.join(sorted(properties)) or 'none'}"
            continue
        expected = declared.get("type") if isinstance(declared, dict) else None
        if isinstance(expected, str) and expected in _JSON_TYPES:
            # bool is an int in Python but not a JSON number.
            ok = isinstance(item, _JSON_TYPES[expected]) and not (
                isinstance(item, bool) and expected in ("number", "integer")
            )
            if not ok:
                return f"{key!r} must be of type {expected}"
    return None


def _check_definition(name: str, description: str, schema: Mapping[str, Any]) -> None:
    if not _NAME_RE.match(name):
        raise ValueError(f"tool name {name!r} must be 1-64 letters, digits, '_' or '-'")
    if not description:
        raise ValueError(f"tool {name!r} needs a description (a docstring or description=...)")
    if not isinstance(schema, Mapping) or schema.get("type") != "object":
        raise ValueError(
            f"the input schema of tool {name!r} must be a JSON schema of type 'object'"
        )
    try:
        json.dumps(schema)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"the input schema of tool {name!r} is not JSON: {exc}") from exc


def current_time(timezone_name: str | None = None) -> dict[str, str]:
    now = datetime.now(UTC)
    result = {"utc": now.isoformat(timespec="seconds")}
    if timezone_name:
        try:
            zone = ZoneInfo(timezone_name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"unknown time zone {timezone_name!r}; use an IANA name such as 'Europe/Paris'"
            ) from exc
        result["timezone"] = timezone_name
        result["local"] = now.astimezone(zone).isoformat(timespec="seconds")
    return result


def _current_time_tool(timezone: str | None = None) -> dict[str, str]:
    return current_time(timezone)


def register_builtins(registry: ToolRegistry) -> None:
    registry._add_builtin(
        ASK_HUMAN,
        "Ask the person who started this task a question and wait for their answer. "
        "Use it when you need information or a decision only they can give. "
        "The task pauses durably (for hours or days if need be) until they answer.",
        {
            "type": "object",
            "properties": {
                "question": {"type": "string", "description": "The question, in plain words."},
                "timeout_seconds": {
                    "type": "integer",
                    "description": "Optional: stop waiting after this many seconds; you are then told no answer came.",
                },
            },
            "required": ["question"],
        },
    )
    registry._add_builtin(
        SLEEP,
        "Pause durably for a number of seconds before continuing, e.g. to wait for something "
        "to happen in the world. The task leaves the worker while it sleeps.",
        {
            "type": "object",
            "properties": {
                "seconds": {"type": "number", "description": "How long to sleep, in seconds."},
                "reason": {
                    "type": "string",
                    "description": "Why you are sleeping, shown to the person watching.",
                },
            },
            "required": ["seconds", "reason"],
        },
    )
    registry.add(
        weather.get_weather,
        name="get_weather",
        description="Get the current weather (temperature, conditions, wind) for a place name, from Open-Meteo.",
        input_schema={
            "type": "object",
            "properties": {
                "location": {
                    "type": "string",
                    "description": "A city or place name, e.g. 'Paris' or 'Kyoto'.",
                }
            },
            "required": ["location"],
        },
    )
    registry.add(
        _current_time_tool,
        name="current_time",
        description="Get the current date and time in UTC, and optionally in an IANA time zone.",
        input_schema={
            "type": "object",
            "properties": {
                "timezone": {
                    "type": "string",
                    "description": "Optional IANA time zone, e.g. 'Asia/Tokyo'.",
                }
            },
        },
    )


default_tools = ToolRegistry()
register_builtins(default_tools)
default_tools.add_code_interpreter()


def tool(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    input_schema: Mapping[str, Any] | None = None,
    registry: ToolRegistry | None = None,
) -> Any:
    """Decorator registering a function as an agent tool (in ``default_tools`` by default)."""
    target = registry if registry is not None else default_tools

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        target.add(func, name=name, description=description, input_schema=input_schema)
        return func

    return decorate(fn) if fn is not None else decorate
