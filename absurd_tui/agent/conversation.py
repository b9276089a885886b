"""The agent's durable layout: parameters, turns, and the steps and events they map to.

This module is the single description of how an agent task lays out its checkpoints.
The task (``task.py``) follows it to run; the transcript (``transcript.py``) follows it
to read a task back from the database. Both walk the same sequence:

1. ``model``: only when the params name no model, a step recording the model chosen
   (so every attempt, on any worker, keeps talking to the same one).
2. For each turn n = 1..max_iterations:
   * ``iteration`` / ``iteration#n``: one model call. Its checkpoint is that turn's
     new assistant message only (content blocks, stop reason, token usage, model), not
     the history, which is rebuilt from the prompt and earlier checkpoints.
   * then each ``tool_use`` block of that message, in order:
     - a function tool: step ``tool:<name>`` (numbered per name), whose checkpoint is
       the ``ToolResult``;
     - ``execute_python``: step ``tool:execute_python`` (numbered), whose checkpoint is
       the ``ToolResult`` plus the call's file changes and host reads under
       ``sandbox``; the contents of files it wrote are checkpoints ``$file:<sha256>``
       written before it (``interpreter.py``);
     - ``ask_human``: an event wait with step ``ask_human`` (numbered), on the event
       ``agent:<task_id>:answer#<k>`` where k counts the task's questions from 1; the
       checkpoint is the answer payload, or a timed-out marker;
     - ``sleep``: a durable sleep with step ``sleep`` (numbered), whose checkpoint is
       the wake-up time;
     - a waiting tool with invalid input: no durable operation; the error result is
       derived from the input alone.
   The results go back to the model as one user message of ``tool_result`` blocks.
3. The loop ends at a turn without ``tool_use`` (its text is the answer) or after
   ``max_iterations`` turns; the tools requested by that last turn are not run.

Step names repeat as ``name``, ``name#2``, ... exactly as the SDK numbers them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .sandbox.base import SandboxParams
from .tools import ASK_HUMAN, EXECUTE_PYTHON, SLEEP, ToolResult

ITERATION_STEP = "iteration"
MODEL_STEP = "model"
ASK_HUMAN_STEP = "ask_human"
SLEEP_STEP = "sleep"
TOOL_STEP_PREFIX = "tool:"

DEFAULT_MAX_ITERATIONS = 20
MAX_ITERATIONS_LIMIT = 1000
DEFAULT_MAX_TOKENS = 4096
DEFAULT_MAX_SLEEP_SECONDS = 3600

PARAM_KEYS = frozenset(
    {
        "prompt",
        "model",
        "max_iterations",
        "system",
        "max_tokens",
        "ask_human_timeout",
        "max_sleep_seconds",
        "sandbox",
    }
)


def answer_event_name(task_id: Any, number: int) -> str:
    """The event that answers the ``number``-th ``ask_human`` question (from 1) of a task.

    Emit it on the task's queue with the answer as payload: a JSON string, or an object
    ``{"answer": "..."}``.
    """
    return f"agent:{task_id}:answer#{number}"


def answer_payload(text: str) -> dict[str, str]:
    """The payload the TUI and CLI emit for a typed answer."""
    return {"answer": text}


def answer_text(payload: Any) -> str:
    """What the model is told the person answered, from any event payload."""
    if isinstance(payload, dict) and isinstance(payload.get("answer"), str):
        return payload["answer"]
    if isinstance(payload, str):
        return payload
    if payload is None:
        return "(an empty answer)"
    return json.dumps(payload, ensure_ascii=False)


class AgentParamsError(ValueError):
    """The task's params cannot run an agent; the message says what to fix."""


@dataclass(frozen=True)
class AgentSpec:
    prompt: str
    model: str | None = None
    max_iterations: int = DEFAULT_MAX_ITERATIONS
    system: str | None = None
    max_tokens: int = DEFAULT_MAX_TOKENS
    ask_human_timeout: int | None = None
    """Seconds to wait for an answer when the model gives no timeout; None waits forever."""
    max_sleep_seconds: float = DEFAULT_MAX_SLEEP_SECONDS
    sandbox: SandboxParams = field(default_factory=SandboxParams)
    """The code interpreter's mounts and limits for this task (or off)."""

    @classmethod
    def parse(cls, params: Any) -> AgentSpec:
        if not isinstance(params, Mapping):
            raise AgentParamsError(
                'The agent needs params as a JSON object, e.g. {"prompt": "What time is it?"}'
            )
        unknown = sorted(set(params) - PARAM_KEYS)
        if unknown:
            raise AgentParamsError(
                f"Unknown agent param(s) {', '.join(map(repr, unknown))}; "
                f"expected some of {', '.join(sorted(PARAM_KEYS))}"
            )
        prompt = params.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise AgentParamsError('The agent needs a non-empty "prompt" string')
        model = params.get("model")
        if model is not None and (not isinstance(model, str) or not model.strip()):
            raise AgentParamsError(
                '"model" must be a model name such as "claude-haiku-4-5" or "demo"'
            )
        system = params.get("system")
        if system is not None and not isinstance(system, str):
            raise AgentParamsError('"system" must be a string')
        try:
            sandbox = SandboxParams.parse(params.get("sandbox"))
        except ValueError as exc:
            raise AgentParamsError(str(exc)) from None
        return cls(
            prompt=prompt,
            model=model.strip() if model else None,
            max_iterations=_int_param(
                params, "max_iterations", DEFAULT_MAX_ITERATIONS, 1, MAX_ITERATIONS_LIMIT
            ),
            system=system or None,
            max_tokens=_int_param(params, "max_tokens", DEFAULT_MAX_TOKENS, 1, 1_000_000),
            ask_human_timeout=_int_param(params, "ask_human_timeout", None, 1, 10**9),
            max_sleep_seconds=_number_param(params, "max_sleep_seconds", DEFAULT_MAX_SLEEP_SECONDS),
            sandbox=sandbox,
        )


def _int_param(
    params: Mapping[str, Any], key: str, default: int | None, low: int, high: int
) -> Any:
    value = params.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise AgentParamsError(f'"{key}" must be a whole number from {low} to {high}')
    return value


def _number_param(params: Mapping[str, Any], key: str, default: float) -> float:
    value = params.get(key)
    if value is None:
        return default
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise AgentParamsError(f'"{key}" must be a non-negative number of seconds')
    return value


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    input: Any


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens
        )

    def to_json(self) -> dict[str, int]:
        return {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens}

    @classmethod
    def from_json(cls, value: Any) -> Usage:
        value = value if isinstance(value, Mapping) else {}
        return cls(int(value.get("input_tokens") or 0), int(value.get("output_tokens") or 0))


@dataclass(frozen=True)
class Turn:
    """One model response: the checkpoint of an ``iteration`` step."""

    content: tuple[Mapping[str, Any], ...]
    stop_reason: str | None
    usage: Usage = field(default_factory=Usage)
    model: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "role": "assistant",
            "content": [dict(block) for block in self.content],
            "stop_reason": self.stop_reason,
            "usage": self.usage.to_json(),
            "model": self.model,
        }

    @classmethod
    def from_json(cls, value: Any) -> Turn:
        if not isinstance(value, Mapping) or not isinstance(value.get("content"), list):
            raise ValueError(f"not an agent iteration checkpoint: {value!r:.200}")
        return cls(
            content=tuple(block for block in value["content"] if isinstance(block, Mapping)),
            stop_reason=value.get("stop_reason"),
            usage=Usage.from_json(value.get("usage")),
            model=value.get("model"),
        )

    @property
    def text(self) -> str:
        return "\n\n".join(
            block["text"]
            for block in self.content
            if block.get("type") == "text" and block.get("text")
        )

    @property
    def tool_calls(self) -> list[ToolCall]:
        return [
            ToolCall(str(block.get("id")), str(block.get("name")), block.get("input"))
            for block in self.content
            if block.get("type") == "tool_use"
        ]

    def message(self) -> dict[str, Any]:
        return {"role": "assistant", "content": [dict(block) for block in self.content]}


class StepNames:
    """Numbers step names the way the SDK does: ``name``, ``name#2``, ``name#3`` ..."""

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}

    def next(self, base: str) -> str:
        count = self._seen.get(base, 0) + 1
        self._seen[base] = count
        return base if count == 1 else f"{base}#{count}"


ToolKind = Literal["function", "sandbox", "ask_human", "sleep", "invalid"]


@dataclass(frozen=True)
class PlannedTool:
    """How one ``tool_use`` block is carried out durably."""

    call: ToolCall
    kind: ToolKind
    base_step: str | None
    """The step name given to the SDK (None for ``invalid``)."""
    step: str | None
    """The checkpoint name the SDK stores it under (numbered)."""
    event_name: str | None = None
    question: str | None = None
    timeout: int | None = None
    seconds: float | None = None
    reason: str | None = None
    error: str | None = None
    """For ``invalid``: the error result given to the model."""

    def invalid_result(self) -> ToolResult:
        return ToolResult(self.call.id, self.error or "invalid input", is_error=True)

    def sleep_result(self) -> ToolResult:
        return ToolResult(self.call.id, f"Slept for {_seconds(self.seconds or 0)} ({self.reason}).")

    def answer_result(self, payload: Any) -> ToolResult:
        return ToolResult(self.call.id, f"The person answered: {answer_text(payload)}")

    def timeout_result(self) -> ToolResult:
        return ToolResult(
            self.call.id,
            f"No answer came within {_seconds(self.timeout or 0)}; the person did not reply to: {self.question}",
            is_error=True,
        )


def _seconds(value: float) -> str:
    shown = f"{value:g}"
    return f"{shown} second" if shown == "1" else f"{shown} seconds"


class Planner:
    """Assigns step names (and ask_human event names) in the order the task runs them."""

    def __init__(self, task_id: Any, spec: AgentSpec) -> None:
        self.task_id = task_id
        self.spec = spec
        self._names = StepNames()
        self._questions = 0

    def model_step(self) -> str:
        return self._names.next(MODEL_STEP)

    def iteration_step(self) -> str:
        return self._names.next(ITERATION_STEP)

    def tool(self, call: ToolCall) -> PlannedTool:
        if call.name == ASK_HUMAN:
            return self._ask_human(call)
        if call.name == SLEEP:
            return self._sleep(call)
        base = TOOL_STEP_PREFIX + call.name
        kind: ToolKind = "sandbox" if call.name == EXECUTE_PYTHON else "function"
        return PlannedTool(call, kind, base, self._names.next(base))

    def _ask_human(self, call: ToolCall) -> PlannedTool:
        args = call.input if isinstance(call.input, Mapping) else {}
        question = args.get("question")
        timeout = args.get("timeout_seconds", self.spec.ask_human_timeout)
        if not isinstance(question, str) or not question.strip():
            return self._invalid(call, 'ask_human needs a non-empty "question" string.')
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 1
        ):
            return self._invalid(
                call, '"timeout_seconds" must be a whole number of seconds, at least 1.'
            )
        self._questions += 1
        return PlannedTool(
            call,
            "ask_human",
            ASK_HUMAN_STEP,
            self._names.next(ASK_HUMAN_STEP),
            event_name=answer_event_name(self.task_id, self._questions),
            question=question.strip(),
            timeout=math.ceil(timeout) if timeout is not None else None,
        )

    def _sleep(self, call: ToolCall) -> PlannedTool:
        args = call.input if isinstance(call.input, Mapping) else {}
        seconds = args.get("seconds")
        reason = args.get("reason")
        limit = self.spec.max_sleep_seconds
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, (int, float))
            or not math.isfinite(seconds)
        ):
            return self._invalid(call, 'sleep needs "seconds", a number.')
        if not 0 <= seconds <= limit:
            return self._invalid(call, f'"seconds" must be between 0 and {limit:g}.')
        reason = reason.strip() if isinstance(reason, str) and reason.strip() else "no reason given"
        return PlannedTool(
            call, "sleep", SLEEP_STEP, self._names.next(SLEEP_STEP), seconds=seconds, reason=reason
        )

    def _invalid(self, call: ToolCall, error: str) -> PlannedTool:
        return PlannedTool(
            call, "invalid", None, None, error=f"Invalid input for {call.name}: {error}"
        )


def tool_results_message(results: Iterable[ToolResult]) -> dict[str, Any]:
    return {"role": "user", "content": [result.block() for result in results]}


def first_message(spec: AgentSpec) -> dict[str, Any]:
    return {"role": "user", "content": spec.prompt}
