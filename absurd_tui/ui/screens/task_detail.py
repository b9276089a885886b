"""One task in full: summary, params/result/failure, runs, checkpoints, waits.

An agent task also gets a Transcript tab, its default: the conversation rebuilt from
the same detail snapshot (``agent.transcript_from_detail``, computed in the poll's
thread), with the question it waits on answered by a key.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Label, Static, TabbedContent, TabPane

from ... import ops
from ...agent import AGENT_TASK, PendingQuestion, Transcript, transcript_from_detail
from ...db.reads import CheckpointInfo, TaskDetail, short_id
from ...text import (
    age,
    attempts,
    json_block,
    json_preview,
    plain,
    state_text,
    timestamp,
    until,
)
from ..actions import bindings, dimmed_action, why_not
from ..widgets.keyed_table import KeyedTable
from ..widgets.polling import PollingView
from ..widgets.status_bar import StatusBar
from ..widgets.transcript import TranscriptLog


@dataclass(frozen=True)
class DetailSnapshot:
    detail: TaskDetail | None
    transcript: Transcript | None
    """For an agent task: its conversation so far."""


class TaskDetailView(PollingView):
    def __init__(self, queue: str, task_id: uuid.UUID, *, agent: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        self.queue = queue
        self.task_id = task_id
        self.agent = agent
        """Whether the Transcript tab is shown (known from the opener, or the first load)."""
        self.detail: TaskDetail | None = None
        self.transcript: Transcript | None = None
        self.checkpoints: dict[str, CheckpointInfo] = {}
        self.missing = False

    def compose(self) -> ComposeResult:
        with Grid(id="task-summary"):
            for field in (
                "id",
                "name",
                "queue",
                "state",
                "attempts",
                "worker",
                "enqueued",
                "started",
                "ended",
                "waiting",
            ):
                yield Label(field.capitalize(), classes="summary-label")
                yield Static("", id=f"summary-{field}", classes="summary-value")
        with TabbedContent(
            id="detail-tabs", initial="transcript-tab" if self.agent else "overview"
        ):
            with TabPane("Transcript", id="transcript-tab"):
                yield Static("", id="transcript-summary")
                yield TranscriptLog(id="transcript")
            with TabPane("Overview", id="overview"):
                with VerticalScroll(id="overview-scroll"):
                    yield Label("Params", classes="section-title")
                    yield Static("", id="params", classes="json")
                    yield Label("Headers", classes="section-title")
                    yield Static("", id="headers", classes="json")
                    yield Label("Result", classes="section-title", id="outcome-title")
                    yield Static("", id="outcome", classes="json")
            with TabPane("Runs", id="runs-tab"):
                yield KeyedTable(
                    [
                        ("attempt", "Attempt"),
                        ("run", "Run"),
                        ("state", "State"),
                        ("worker", "Worker"),
                        ("started", "Started"),
                        ("ended", "Ended"),
                        ("failure", "Failure"),
                    ],
                    id="runs",
                )
            with TabPane("Checkpoints", id="checkpoints-tab"), Horizontal():
                yield KeyedTable(
                    [
                        ("step", "Step"),
                        ("updated", "Updated"),
                        ("attempt", "Attempt"),
                        ("value", "Value"),
                    ],
                    id="checkpoints",
                )
                with VerticalScroll(id="checkpoint-value-scroll"):
                    yield Static("", id="checkpoint-value", classes="json")
            with TabPane("Waits", id="waits-tab"):
                yield KeyedTable(
                    [
                        ("event", "Event"),
                        ("step", "Step"),
                        ("since", "Waiting since"),
                        ("timeout", "Timeout"),
                    ],
                    id="task-waits",
                )
        yield Static("", id="detail-error", classes="view-error")

    def on_mount(self) -> None:
        if not self.agent:
            self.query_one("#detail-tabs", TabbedContent).hide_tab("transcript-tab")

    def fetch(self, params: Any) -> DetailSnapshot:
        detail = self.app.source.task_detail(self.queue, self.task_id)
        transcript = None
        if detail is not None and detail.task_name == AGENT_TASK:
            transcript = transcript_from_detail(detail, now=self.app.now())
        return DetailSnapshot(detail, transcript)

    def apply(self, snapshot: DetailSnapshot) -> None:
        detail = snapshot.detail
        if detail is None:
            self.missing = True
            self.show_error(f"Task {self.task_id} no longer exists in queue {self.queue!r}.")
            return
        self.detail = detail
        now = self.app.now()
        colours = self.app.colours
        last = detail.last_run
        values = {
            "id": plain(str(detail.task_id)),
            "name": plain(detail.task_name, "bold"),
            "queue": plain(detail.queue),
            "state": state_text(detail.state, colours),
            "attempts": Text(attempts(detail.attempts, detail.max_attempts)),
            "worker": plain(last.claimed_by if last and last.claimed_by else ""),
            "enqueued": Text(f"{timestamp(detail.enqueue_at)} ({age(detail.enqueue_at, now)} ago)"),
            "started": Text(timestamp(detail.first_started_at)),
            "ended": Text(timestamp(detail.ended_at)),
            "waiting": self._waiting(detail, now),
        }
        for field, value in values.items():
            self.query_one(f"#summary-{field}", Static).update(value)
        self.query_one("#params", Static).update(json_block(detail.params))
        self.query_one("#headers", Static).update(json_block(detail.headers))
        title = self.query_one("#outcome-title", Label)
        outcome = self.query_one("#outcome", Static)
        failure = detail.failure
        if detail.state == "completed":
            title.update("Result")
            outcome.update(json_block(detail.result))
        elif failure is not None:
            title.update("Failure" if detail.state == "failed" else "Last failure")
            outcome.update(_failure_text(failure))
        else:
            title.update("Result")
            outcome.update(Text("(not finished)", style=colours.get("foreground-muted", "")))
        self._apply_runs(detail, colours)
        self._apply_checkpoints(detail, now)
        self.query_one("#task-waits", KeyedTable).apply(
            [
                (
                    f"{wait.run_id}/{wait.step_name}",
                    (
                        plain(wait.event_name, "bold"),
                        plain(wait.step_name),
                        Text(f"{timestamp(wait.created_at)} ({age(wait.created_at, now)} ago)"),
                        Text("none" if wait.timeout_at is None else until(wait.timeout_at, now)),
                    ),
                )
                for wait in detail.waits
            ]
        )
        self._apply_transcript(snapshot.transcript, now, detail.checkpoints_truncated)
        self.screen.refresh_bindings()

    def _apply_transcript(self, transcript: Transcript | None, now, truncated: bool) -> None:
        self.transcript = transcript
        if transcript is None:
            return
        if not self.agent:
            # Opened without knowing it is an agent: now we do, show its conversation.
            self.agent = True
            tabs = self.query_one("#detail-tabs", TabbedContent)
            tabs.show_tab("transcript-tab")
            tabs.active = "transcript-tab"
        colours = self.app.colours
        summary = _transcript_summary(transcript, colours)
        if truncated:
            summary.append(" · only the oldest checkpoints were read: the rest is not shown")
        self.query_one("#transcript-summary", Static).update(summary)
        self.query_one("#transcript", TranscriptLog).show(transcript.entries, now, colours)

    @staticmethod
    def _waiting(detail: TaskDetail, now) -> Text:
        if detail.state != "sleeping":
            return Text("")
        if detail.waits:
            return plain("event " + ", ".join(w.event_name for w in detail.waits))
        run = detail.last_run
        if run is not None and run.available_at is not None:
            return Text(f"timer, wakes {until(run.available_at, now)}")
        return Text("")

    def _apply_runs(self, detail: TaskDetail, colours) -> None:
        self.query_one("#runs", KeyedTable).apply(
            [
                (
                    str(run.run_id),
                    (
                        Text(str(run.attempt), justify="right"),
                        Text(short_id(run.run_id)),
                        state_text(run.state, colours),
                        plain(run.claimed_by or ""),
                        Text(timestamp(run.started_at)),
                        Text(timestamp(run.ended_at)),
                        plain(_failure_line(run.failure_reason)),
                    ),
                )
                for run in detail.runs
            ]
        )

    def _apply_checkpoints(self, detail: TaskDetail, now) -> None:
        self.checkpoints = {cp.name: cp for cp in detail.checkpoints}
        table = self.query_one("#checkpoints", KeyedTable)
        table.apply(
            [
                (
                    cp.name,
                    (
                        plain(cp.name, "bold"),
                        Text(f"{age(cp.updated_at, now)} ago", justify="right"),
                        Text(
                            "" if cp.owner_attempt is None else str(cp.owner_attempt),
                            justify="right",
                        ),
                        json_preview(cp.state, 50),
                    ),
                )
                for cp in detail.checkpoints
            ]
        )
        self._show_checkpoint(table.cursor_key)

    @on(KeyedTable.RowHighlighted, "#checkpoints")
    def _checkpoint_highlighted(self, event: KeyedTable.RowHighlighted) -> None:
        self._show_checkpoint(event.row_key.value)

    def _show_checkpoint(self, key: str | None) -> None:
        value = self.query_one("#checkpoint-value", Static)
        checkpoint = self.checkpoints.get(key) if key else None
        if checkpoint is None:
            value.update(Text("Select a checkpoint to see its value."))
            return
        heading = plain(
            f"{checkpoint.name}  ({checkpoint.status}, {timestamp(checkpoint.updated_at)})", "bold"
        )
        value.update(Text.assemble(heading, "\n", json_block(checkpoint.state)))

    def show_error(self, message: str | None) -> None:
        error = self.query_one("#detail-error", Static)
        error.update(plain(message or ""))
        error.set_class(bool(message), "-visible")


def _transcript_summary(transcript: Transcript, colours: dict[str, str]) -> Text:
    turns = f"{transcript.iterations} turn{'' if transcript.iterations == 1 else 's'}"
    parts = [plain(transcript.model_label, "bold"), Text(f" · {turns}")]
    usage = transcript.usage
    if usage.input_tokens or usage.output_tokens:
        parts.append(Text(f" · {usage.input_tokens:,} tokens in, {usage.output_tokens:,} out"))
    parts.append(Text(" · "))
    parts.append(state_text(transcript.state, colours))
    if transcript.pending_question is not None:
        parts.append(
            Text(
                " · waiting for your answer: press A",
                style=f"bold {colours.get('warning', '')}".strip(),
            )
        )
    return Text.assemble(*parts)


def _failure_line(reason: Any) -> str:
    if reason is None:
        return ""
    if isinstance(reason, dict):
        name = reason.get("name") or ""
        message = reason.get("message") or ""
        return (
            f"{name}: {message}"
            if name and message
            else str(name or message or json_preview(reason).plain)
        )
    return json_preview(reason).plain


def _failure_text(reason: Any) -> Text:
    if isinstance(reason, dict) and ("message" in reason or "name" in reason):
        head = _failure_line(reason)
        text = Text.assemble(plain(head, "bold", single_line=False), "\n")
        trace = reason.get("traceback") or reason.get("stack")
        if trace:
            text.append_text(plain(f"\n{trace}", single_line=False))
        rest = {
            k: v for k, v in reason.items() if k not in ("name", "message", "traceback", "stack")
        }
        if rest:
            text.append_text(Text("\n"))
            text.append_text(json_block(rest))
        return text
    return json_block(reason)


class TaskDetailScreen(Screen):
    BINDINGS = bindings("detail")

    def __init__(self, queue: str, task_id: uuid.UUID, task_name: str | None = None):
        super().__init__()
        self.queue = queue
        self.task_id = task_id
        self.task_name = task_name

    def compose(self) -> ComposeResult:
        yield Header(icon="◆")
        yield TaskDetailView(
            self.queue, self.task_id, agent=self.task_name == AGENT_TASK, id="detail-view"
        )
        yield StatusBar(self.app.source.label, self.app.monotonic, id="status")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = f"task {self.task_id}"
        self.refresh_views()
        # An agent opens on its transcript, ready to scroll with the keys.
        target = "#transcript" if self.view.agent else "#detail-tabs"
        self.query_one(target).focus()

    def action_targets(self) -> dict[str, Any]:
        """Which node runs each scope's actions now (for the command palette)."""
        return {"detail": self}

    @property
    def view(self) -> TaskDetailView:
        return self.query_one(TaskDetailView)

    def refresh_views(self) -> None:
        for view in self.query(TaskDetailView):
            view.poll()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        detail = self.view.detail if self.is_mounted else None
        if action == "retry_task":
            return (detail is not None and ops.can_retry(detail.state)) or None
        if action == "cancel_task":
            return (detail is not None and ops.can_cancel(detail.state)) or None
        if action == "answer_question":
            # Hidden on tasks that are not agents (they never ask), dimmed while an
            # agent is not waiting for an answer.
            if not (self.is_mounted and self.view.agent):
                return False
            return self.pending_question is not None or None
        return True

    @property
    def pending_question(self) -> PendingQuestion | None:
        transcript = self.view.transcript if self.is_mounted else None
        return transcript.pending_question if transcript is not None else None

    def on_key(self, event) -> None:
        action = dimmed_action(self, "detail", event.key)
        if (
            action is None
            and event.key == "A"
            and self.check_action("answer_question", ()) is False
        ):
            event.stop()
            self.notify(
                "This is not an agent task: it never asks questions.",
                severity="warning",
                markup=False,
            )
            return
        if action in ("retry_task", "cancel_task", "answer_question"):
            detail = self.view.detail
            event.stop()
            event.prevent_default()
            self.notify(
                why_not(action, detail.state if detail else None), severity="warning", markup=False
            )

    def action_close(self) -> None:
        self.dismiss()

    def action_copy_id(self) -> None:
        self.app.copy_to_clipboard(str(self.task_id))
        self.notify(f"Copied {self.task_id}", markup=False)

    def action_retry_task(self) -> None:
        detail = self.view.detail
        if detail is not None:
            self.app.retry_task(
                detail.queue,
                detail.task_id,
                detail.task_name,
                detail.attempts,
                detail.max_attempts,
                detail.state,
            )

    def action_cancel_task(self) -> None:
        detail = self.view.detail
        if detail is not None:
            self.app.cancel_task(detail.queue, detail.task_id, detail.task_name, detail.state)

    def action_answer_question(self) -> None:
        question = self.pending_question
        if question is not None:
            self.app.answer_question(question)

    def action_emit_for_wait(self) -> None:
        detail = self.view.detail
        if detail is not None and detail.waits:
            self.app.open_emit(detail.queue, detail.waits[0].event_name)
        else:
            self.app.open_emit(self.queue, "")
