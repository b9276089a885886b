"""The built-in ``agent`` task: an LLM tool-use loop where every turn is a checkpoint.

The durable layout (which steps, sleeps and event waits happen in which order, and
what each checkpoint holds) is described and shared in ``conversation.py``; the
transcript reads a task back by the same rules.

Where tools run, and why: the model call is the whole ``iteration`` step, and each
function tool call is a step of its own (``tool:<name>``), after it. A step runs at
least once and, once checkpointed, never again. Keeping the two apart means a crash
while a tool runs repeats only that tool call, never the model call before it (which
would cost tokens and could ask for different tools, leaving the first attempt's side
effects orphaned) nor the tools already finished. The waiting tools (``ask_human``,
``sleep``) are event waits and sleeps in their own right, outside any step, so the run
leaves the worker while it waits.

Failures: rate limits, overload, server and network errors propagate out of the
iteration step, so the engine retries the task with backoff and only that turn is
asked again. Errors that retrying cannot fix (bad params, a rejected key or request)
fail the task for good, with the reason.
"""

from __future__ import annotations

import functools
from typing import Any

import psycopg

from ..sdk.client import Absurd, SpawnResult
from ..sdk.errors import NonRetryableError
from ..sdk.errors import TimeoutError as EventTimeout
from ..sdk.registry import TaskRegistration, TaskRegistry, default_registry
from .conversation import (
    ASK_HUMAN_STEP,
    ITERATION_STEP,
    MODEL_STEP,
    SLEEP_STEP,
    AgentParamsError,
    AgentSpec,
    PlannedTool,
    Planner,
    Turn,
    Usage,
    answer_payload,
    first_message,
    tool_results_message,
)
from .models import ModelRejectedError, default_model_name, make_model
from .tools import ToolRegistry, ToolResult, default_tools

AGENT_TASK = "agent"
AGENT_QUEUE = "agents"
DEFAULT_MAX_ATTEMPTS = 10
DEFAULT_RETRY_STRATEGY = {"kind": "exponential", "base_seconds": 5, "factor": 2, "max_seconds": 300}
"""5 s, 10 s, 20 s ... capped at 5 minutes: about 25 minutes over the 9 retries."""


class AgentFailure(NonRetryableError):
    """The agent cannot go on, and retrying would fail the same way: the task fails now."""


def run_agent(params: Any, ctx: Any, tools: ToolRegistry | None = None) -> dict[str, Any]:
    """The task handler: ``def handler(params, ctx)``."""
    tools = tools if tools is not None else default_tools
    try:
        spec = AgentSpec.parse(params)
    except AgentParamsError as exc:
        raise AgentFailure(str(exc)) from exc
    planner = Planner(ctx.task_id, spec)

    model_name = spec.model
    if model_name is None:
        expected = planner.model_step()
        model_name = ctx.step(MODEL_STEP, default_model_name)
        _check_step(ctx, expected)
    model = None
    tool_specs = tools.specs()
    messages: list[dict[str, Any]] = [first_message(spec)]
    usage = Usage()

    def call_model() -> dict[str, Any]:
        nonlocal model
        # Built on first use: a run that replays only checkpointed turns needs no key.
        model = model if model is not None else make_model(model_name)
        turn = model.respond(
            system=spec.system, messages=messages, tools=tool_specs, max_tokens=spec.max_tokens
        )
        return turn.to_json()

    for number in range(1, spec.max_iterations + 1):
        expected = planner.iteration_step()
        try:
            turn = Turn.from_json(ctx.step(ITERATION_STEP, call_model))
        except ModelRejectedError as exc:
            raise AgentFailure(str(exc)) from exc
        _check_step(ctx, expected)
        usage = usage + turn.usage
        messages.append(turn.message())
        calls = turn.tool_calls
        if not calls:
            return _result(turn.text, number, usage, model_name, "end_turn")
        if number == spec.max_iterations:
            # The requested tools are not run: nobody would read their results.
            return _result(turn.text or None, number, usage, model_name, "max_iterations")
        results = [_run_tool(ctx, planner.tool(call), tools) for call in calls]
        messages.append(tool_results_message(results))
    raise AssertionError("unreachable: the loop returns on its last iteration")


def _result(
    answer: str | None, iterations: int, usage: Usage, model: str, stop: str
) -> dict[str, Any]:
    return {
        "answer": answer,
        "iterations": iterations,
        "usage": usage.to_json(),
        "model": model,
        "stop_reason": stop,
    }


def _run_tool(ctx: Any, planned: PlannedTool, tools: ToolRegistry) -> ToolResult:
    call = planned.call
    if planned.kind == "invalid":
        return planned.invalid_result()
    if planned.kind == "function":
        stored = ctx.step(
            planned.base_step, lambda: tools.call(call.id, call.name, call.input).to_json()
        )
        _check_step(ctx, planned.step)
        return ToolResult(call.id, str(stored["content"]), bool(stored.get("is_error")))
    if planned.kind == "ask_human":
        try:
            payload = ctx.await_event(
                planned.event_name, step_name=ASK_HUMAN_STEP, timeout=planned.timeout
            )
        except EventTimeout:
            _check_step(ctx, planned.step)
            return planned.timeout_result()
        _check_step(ctx, planned.step)
        return planned.answer_result(payload)
    if planned.kind == "sleep":
        ctx.sleep_for(SLEEP_STEP, planned.seconds)
        _check_step(ctx, planned.step)
        return planned.sleep_result()
    raise AssertionError(f"unknown tool kind {planned.kind!r}")


def _check_step(ctx: Any, expected: str | None) -> None:
    """The transcript finds checkpoints by the names the planner predicts; if the SDK
    ever named them differently, transcripts would silently lose turns, so stop."""
    actual = getattr(ctx, "current_step", None)
    if expected is not None and actual is not None and actual != expected:
        raise AssertionError(
            f"agent step naming out of step: SDK used {actual!r}, planner expected {expected!r}"
        )


def register_agent(
    registry: TaskRegistry | None = None,
    *,
    queue: str | None = None,
    tools: ToolRegistry | None = None,
) -> TaskRegistration:
    """Register the ``agent`` task (on ``agents`` unless ``queue`` says otherwise).

    Idempotent. Without arguments it keeps an agent registration that is already there,
    so a task module that moved the agent to its own queue
    (``register_agent(queue="mine")``) wins, whichever is loaded first. A registry holds
    one queue per task name: to run agents on several queues, use one worker (and one
    registry) per queue.
    """
    registry = registry if registry is not None else default_registry
    existing = registry.get(AGENT_TASK)
    if (
        existing is not None
        and getattr(existing.handler, "func", existing.handler) is run_agent
        and (queue is None or existing.queue == queue)
        and tools is None
    ):
        return existing
    handler = run_agent if tools is None else functools.partial(run_agent, tools=tools)
    return registry.register(
        AGENT_TASK,
        handler,
        queue=queue if queue is not None else AGENT_QUEUE,
        default_max_attempts=DEFAULT_MAX_ATTEMPTS,
    )


def agent_params(
    prompt: str,
    *,
    model: str | None = None,
    max_iterations: int | None = None,
    system: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Build and check agent params; the model defaults to Claude with a key, else demo."""
    params: dict[str, Any] = {"prompt": prompt, "model": model or default_model_name()}
    if max_iterations is not None:
        params["max_iterations"] = max_iterations
    if system:
        params["system"] = system
    params.update({key: value for key, value in extra.items() if value is not None})
    AgentSpec.parse(params)
    return params


def spawn_agent(
    conn: psycopg.Connection,
    prompt: str,
    *,
    model: str | None = None,
    max_iterations: int | None = None,
    system: str | None = None,
    queue: str = AGENT_QUEUE,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    retry_strategy: dict[str, Any] | None = None,
    **extra: Any,
) -> str:
    """Spawn an agent task and return its id; bad params raise before anything is written.

    The queue is created if missing. A worker must serve that queue with the agent
    registered for it (``register_agent(queue=...)``); the default is ``agents``.
    """
    spawned = spawn_agent_task(
        conn,
        prompt,
        model=model,
        max_iterations=max_iterations,
        system=system,
        queue=queue,
        max_attempts=max_attempts,
        retry_strategy=retry_strategy,
        **extra,
    )
    return spawned.task_id


def spawn_agent_task(
    conn: psycopg.Connection,
    prompt: str,
    *,
    model: str | None = None,
    max_iterations: int | None = None,
    system: str | None = None,
    queue: str = AGENT_QUEUE,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    retry_strategy: dict[str, Any] | None = None,
    **extra: Any,
) -> SpawnResult:
    """``spawn_agent`` returning the SDK's whole spawn result (ids and attempt)."""
    params = agent_params(
        prompt, model=model, max_iterations=max_iterations, system=system, **extra
    )
    registry = TaskRegistry()
    register_agent(registry, queue=queue)
    client = Absurd(conn, queue_name=queue, registry=registry)
    client.create_queue(queue)
    return client.spawn(
        AGENT_TASK,
        params,
        max_attempts=max_attempts,
        retry_strategy=retry_strategy if retry_strategy is not None else DEFAULT_RETRY_STRATEGY,
    )


def answer_question(conn: psycopg.Connection, queue: str, event_name: str, answer: str) -> None:
    """Give a person's answer to an agent waiting in ``ask_human`` (the transcript's
    ``pending_question`` names the queue and event). The first answer wins."""
    if not isinstance(answer, str) or not answer.strip():
        raise ValueError("The answer is empty: type something for the agent.")
    client = Absurd(conn, queue_name=queue, registry=TaskRegistry())
    client.emit_event(event_name, answer_payload(answer), queue_name=queue)
