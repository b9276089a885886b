"""An agent task's conversation, rebuilt from its params and checkpoints.

Pure functions (no I/O, no UI): ``build_transcript`` walks the checkpoints by the
layout rules of ``conversation.py``, the same walk the task makes, and returns the
conversation as an ordered list of entries, the question the agent is waiting on if
any, and a marker for the work in progress. The TUI's transcript view and
``absurd-tui agent --follow`` render it; ``transcript_from_detail`` adapts the
TUI's ``TaskDetail`` read model, and ``load_transcript`` reads one task directly.

Entries come in a stable order and only ever get appended, except the last one when
it is ``transient`` (work in progress, a wait, a sleep), which the next snapshot
replaces.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import psycopg

from ..db import reads
from ..db.models import is_live
from ..text import preview
from .conversation import AgentParamsError, AgentSpec, Planner, Turn, Usage
from .models import model_label
from .tools import ToolResult

EntryKind = Literal[
    "prompt",
    "assistant",
    "tool_call",
    "tool_result",
    "waiting_human",
    "sleeping",
    "running",
    "final",
    "stopped",
    "failed",
    "cancelled",
    "error",
]

TRANSIENT_KINDS = frozenset({"waiting_human", "sleeping", "running"})


@dataclass(frozen=True)
class Entry:
    key: str
    """Stable identity of the entry across snapshots (for diffing views)."""
    kind: EntryKind
    text: str
    iteration: int | None = None
    tool_name: str | None = None
    tool_input: Any = None
    tool_use_id: str | None = None
    is_error: bool = False
    step: str | None = None
    """The checkpoint the entry comes from or waits for."""
    event_name: str | None = None
    until: datetime | None = None

    @property
    def transient(self) -> bool:
        return self.kind in TRANSIENT_KINDS


@dataclass(frozen=True)
class PendingQuestion:
    """An ``ask_human`` the agent is (or is about to be) waiting on."""

    question: str
    event_name: str
    """Emit this event on ``queue`` with the answer (``conversation.answer_payload``)."""
    step: str
    queue: str
    task_id: str
    timeout_seconds: int | None
    waiting_since: datetime | None
    """When the wait was registered; None while the task is on its way to it."""
    timeout_at: datetime | None


@dataclass(frozen=True)
class Transcript:
    task_id: str
    queue: str
    state: str
    model: str | None
    model_label: str
    entries: tuple[Entry, ...]
    pending_question: PendingQuestion | None
    iterations: int
    """Turns completed (checkpointed) so far."""
    usage: Usage

    @property
    def finished(self) -> bool:
        return not is_live(self.state)

    @property
    def stable_entries(self) -> tuple[Entry, ...]:
        """Entries that no later snapshot will change."""
        if self.entries and self.entries[-1].transient:
            return self.entries[:-1]
        return self.entries


@dataclass(frozen=True)
class Wait:
    step: str
    event_name: str
    created_at: datetime | None = None
    timeout_at: datetime | None = None


def build_transcript(
    params: Any,
    checkpoints: Mapping[str, Any],
    *,
    task_id: Any,
    queue: str,
    state: str,
    timed_out: Iterable[str] = (),
    waits: Iterable[Wait] = (),
    result: Any = None,
    failure: Any = None,
    last_error: str | None = None,
    now: datetime | None = None,
) -> Transcript:
    """The conversation of one agent task.

    ``checkpoints`` maps committed checkpoint names to their values; ``timed_out``
    names the event waits that timed out (status ``timed_out``); ``waits`` are the
    task's registered event waits; ``failure`` is the failure reason when the task
    failed; ``last_error`` the message of the latest failed attempt while it retries.
    """
    now = now or datetime.now(UTC)
    task_id = str(task_id)
    timed_out = frozenset(timed_out)
    waits_by_step = {wait.step: wait for wait in waits}
    live = is_live(state)
    entries: list[Entry] = []
    usage = Usage()
    iterations = 0
    pending: PendingQuestion | None = None

    prompt = params.get("prompt") if isinstance(params, Mapping) else None
    entries.append(Entry("prompt", "prompt", prompt if isinstance(prompt, str) else repr(params)))
    try:
        spec = AgentSpec.parse(params)
    except AgentParamsError as exc:
        entries.append(Entry("params", "error", f"These params cannot run an agent: {exc}"))
        spec = None

    model = spec.model if spec else None
    if spec is not None:
        planner = Planner(task_id, spec)
        if model is None:
            stored = checkpoints.get(planner.model_step())
            model = stored if isinstance(stored, str) else None
        entries_done = False
        for number in range(1, spec.max_iterations + 1):
            step = planner.iteration_step()
            if step not in checkpoints:
                if live:
                    entries.append(_running(step, number, state, last_error))
                break
            try:
                turn = Turn.from_json(checkpoints[step])
            except ValueError as exc:
                entries.append(
                    Entry(
                        step,
                        "error",
                        f"Unreadable checkpoint {step}: {exc}",
                        iteration=number,
                        step=step,
                    )
                )
                break
            iterations = number
            usage = usage + turn.usage
            calls = turn.tool_calls
            last_turn = number == spec.max_iterations
            if not calls:
                entries.append(Entry(step, "final", turn.text, iteration=number, step=step))
                entries_done = True
                break
            stop_walk = False
            call_index = 0
            for index, block in enumerate(turn.content):
                if stop_walk:
                    # Nothing after an unfinished tool call exists yet, and only the
                    # last entry may be transient: the rest of the turn comes later.
                    break
                kind = block.get("type")
                if kind == "text" and block.get("text"):
                    entries.append(
                        Entry(
                            f"{step}/{index}",
                            "assistant",
                            block["text"],
                            iteration=number,
                            step=step,
                        )
                    )
                elif kind == "tool_use":
                    call = calls[call_index]
                    call_index += 1
                    entries.append(
                        Entry(
                            f"{step}/{index}",
                            "tool_call",
                            _call_text(call.name, call.input),
                            iteration=number,
                            tool_name=call.name,
                            tool_input=call.input,
                            tool_use_id=call.id,
                            step=step,
                        )
                    )
                    if last_turn:
                        continue
                    outcome = _tool_outcome(
                        planner.tool(call),
                        checkpoints,
                        timed_out,
                        waits_by_step,
                        task_id=task_id,
                        queue=queue,
                        state=state,
                        number=number,
                        now=now,
                        last_error=last_error,
                    )
                    entry, question = outcome
                    if question is not None:
                        pending = question
                    if entry is not None:
                        entries.append(entry)
                    if entry is None or entry.transient:
                        stop_walk = True
            if last_turn:
                entries.append(
                    Entry(
                        f"{step}/stopped",
                        "stopped",
                        f"Stopped after {number} iterations (max_iterations) with tool calls unanswered.",
                        iteration=number,
                    )
                )
                entries_done = True
                break
            if stop_walk:
                break
        if (
            not entries_done
            and state == "completed"
            and isinstance(result, Mapping)
            and result.get("answer")
        ):
            entries.append(Entry("result", "final", str(result["answer"])))

    if state == "failed":
        entries.append(Entry("failed", "failed", "The agent failed: " + _failure_text(failure)))
    elif state == "cancelled":
        entries.append(Entry("cancelled", "cancelled", "The agent was cancelled."))
    if not live:
        entries = [entry for entry in entries if not entry.transient]
        pending = None
    return Transcript(
        task_id=task_id,
        queue=queue,
        state=state,
        model=model,
        model_label=model_label(model),
        entries=tuple(entries),
        pending_question=pending,
        iterations=iterations,
        usage=usage,
    )


def _tool_outcome(
    planned: Any,
    checkpoints: Mapping[str, Any],
    timed_out: frozenset[str],
    waits_by_step: Mapping[str, Wait],
    *,
    task_id: str,
    queue: str,
    state: str,
    number: int,
    now: datetime,
    last_error: str | None,
) -> tuple[Entry | None, PendingQuestion | None]:
    """The entry showing a tool call's result, or the wait/work still in progress."""
    call = planned.call
    key = f"{planned.step or 'invalid'}/{call.id}"

    def result_entry(result: ToolResult) -> Entry:
        return Entry(
            key,
            "tool_result",
            result.content,
            iteration=number,
            tool_name=call.name,
            tool_use_id=call.id,
            is_error=result.is_error,
            step=planned.step,
        )

    if planned.kind == "invalid":
        return result_entry(planned.invalid_result()), None
    step = planned.step
    if planned.kind == "function":
        if step in checkpoints and isinstance(checkpoints[step], Mapping):
            stored = checkpoints[step]
            return result_entry(
                ToolResult(call.id, str(stored.get("content")), bool(stored.get("is_error")))
            ), None
        if not is_live(state):
            return None, None
        text = f"Running tool {call.name}"
        if state != "running":
            text += f" ({_state_note(state, last_error)})"
        return Entry(key, "running", text, iteration=number, tool_name=call.name, step=step), None
    if planned.kind == "ask_human":
        if step in timed_out:
            return result_entry(planned.timeout_result()), None
        if step in checkpoints:
            return result_entry(planned.answer_result(checkpoints[step])), None
        if not is_live(state):
            return None, None
        wait = waits_by_step.get(step)
        question = PendingQuestion(
            question=planned.question,
            event_name=planned.event_name,
            step=step,
            queue=queue,
            task_id=task_id,
            timeout_seconds=planned.timeout,
            waiting_since=wait.created_at if wait else None,
            timeout_at=wait.timeout_at if wait else None,
        )
        return (
            Entry(
                key,
                "waiting_human",
                planned.question,
                iteration=number,
                tool_name=call.name,
                tool_use_id=call.id,
                step=step,
                event_name=planned.event_name,
                until=wait.timeout_at if wait else None,
            ),
            question,
        )
    if planned.kind == "sleep":
        stored = checkpoints.get(step)
        wake = _timestamp(stored)
        if wake is not None and (wake <= now or not is_live(state)):
            return result_entry(planned.sleep_result()), None
        if not is_live(state):
            return None, None
        text = f"Sleeping {planned.seconds:g} s: {planned.reason}"
        return Entry(
            key, "sleeping", text, iteration=number, tool_name=call.name, step=step, until=wake
        ), None
    raise AssertionError(f"unknown tool kind {planned.kind!r}")


def _running(step: str, number: int, state: str, last_error: str | None) -> Entry:
    if state == "running":
        text = f"Iteration {number}: waiting for the model"
    else:
        text = f"Iteration {number}: {_state_note(state, last_error)}"
    return Entry(f"{step}/running", "running", text, iteration=number, step=step)


def _state_note(state: str, last_error: str | None) -> str:
    if last_error:
        return f"will retry after an error: {last_error}"
    if state == "pending":
        return "queued for a worker"
    return "waiting to be resumed"


def _call_text(name: str, tool_input: Any) -> str:
    if isinstance(tool_input, Mapping) and tool_input:
        args = ", ".join(f"{key}={_short(value)}" for key, value in tool_input.items())
        return f"{name}({args})"
    return f"{name}()"


def _short(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else preview(value, 80)
    return text if len(text) <= 80 else text[:79] + "…"


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(
            value.replace("Z", "+00:00") if value.endswith("Z") else value
        )
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _failure_text(failure: Any) -> str:
    if isinstance(failure, Mapping):
        message = failure.get("message")
        name = failure.get("name")
        if message:
            return str(message) if name in (None, "AgentFailure") else f"{name}: {message}"
        return preview(failure, 500)
    if failure is None:
        return "no reason recorded"
    return str(failure)


def transcript_from_detail(detail: reads.TaskDetail, now: datetime | None = None) -> Transcript:
    """The transcript of a task from its ``TaskDetail`` snapshot; ``now`` defaults to
    the database's clock when the snapshot was read."""
    committed = {c.name: c.state for c in detail.checkpoints if c.status == "committed"}
    timed_out = [c.name for c in detail.checkpoints if c.status == "timed_out"]
    waits = [Wait(w.step_name, w.event_name, w.created_at, w.timeout_at) for w in detail.waits]
    last_error = None
    if is_live(detail.state):
        last = detail.last_run
        # A retry run that has not started yet: the previous attempt's failure is why.
        if last is not None and last.attempt > 1 and last.started_at is None:
            failed = [run for run in detail.runs if run.failure_reason is not None]
            if failed:
                last_error = _failure_text(failed[-1].failure_reason)
    return build_transcript(
        detail.params,
        committed,
        task_id=detail.task_id,
        queue=detail.queue,
        state=detail.state,
        timed_out=timed_out,
        waits=waits,
        result=detail.result,
        failure=detail.failure if detail.state == "failed" else None,
        last_error=last_error,
        now=now if now is not None else detail.read_at,
    )


def load_transcript(
    conn: psycopg.Connection, queue: str, task_id: str | uuid.UUID
) -> Transcript | None:
    """Read one agent task and build its transcript (None if there is no such task).

    The read is the detail view's own consistent snapshot (``reads.task_detail``), with
    every checkpoint: a transcript is built from all of its steps.
    """
    detail = reads.task_detail(conn, queue, task_id, checkpoint_limit=None)
    return transcript_from_detail(detail) if detail is not None else None
