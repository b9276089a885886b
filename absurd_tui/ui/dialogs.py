"""Modal dialogs: spawn, new agent, answer the agent, emit, retry, confirm, worker count.

Each dialog only collects and validates input, then dismisses with a frozen request
(or None when cancelled); the app carries the request out off the UI thread. JSON
fields are checked as the user types and the error position is shown under them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import (
    Button,
    Input,
    Label,
    RadioButton,
    RadioSet,
    Select,
    Static,
    TextArea,
)

from .. import ops
from ..agent import AgentParamsError, ModelOption, PendingQuestion, agent_params
from ..agent.conversation import MAX_ITERATIONS_LIMIT
from ..agent.models import CODE_PROMPT
from ..config import DEFAULT_QUEUE
from ..sdk.validation import validate_max_attempts, validate_params
from ..text import plain
from .source import TaskType, parse_json


@dataclass(frozen=True)
class SpawnRequest:
    queue: str
    task_name: str
    params: Any
    max_attempts: int | None


@dataclass(frozen=True)
class EmitRequest:
    queue: str
    event_name: str
    payload: Any


@dataclass(frozen=True)
class AgentRequest:
    queue: str
    prompt: str
    model: str
    max_iterations: int | None


@dataclass(frozen=True)
class RetryRequest:
    spawn_new: bool
    max_attempts: int | None


class Dialog(ModalScreen):
    """Common frame: a titled box, Escape cancels, Ctrl+S (or the OK button) submits."""

    BINDINGS = [
        Binding("escape", "dismiss_dialog", "Cancel"),
        Binding("ctrl+s", "submit", "Submit", show=True),
    ]
    TITLE_TEXT = ""

    def compose_body(self) -> ComposeResult:
        yield from ()

    ok_label = "OK"
    ok_variant = "primary"
    dismiss_label = "Cancel"

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.TITLE_TEXT, classes="dialog-title")
            yield from self.compose_body()
            yield Static("", classes="dialog-error", id="dialog-error")
            with Horizontal(classes="dialog-buttons"):
                yield Static(f"ctrl+s {self.ok_label.lower()} · esc close", classes="dialog-keys")
                yield Button(self.dismiss_label, id="cancel")
                yield Button(self.ok_label, id="ok", variant=self.ok_variant)

    def action_dismiss_dialog(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#cancel")
    def _cancelled(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#ok")
    def _ok(self) -> None:
        self.action_submit()

    def action_submit(self) -> None:
        try:
            result = self.collect()
        except ValueError as exc:
            self.show_error(str(exc))
            return
        self.dismiss(result)

    def collect(self) -> Any:
        raise NotImplementedError

    def show_error(self, message: str) -> None:
        self.query_one("#dialog-error", Static).update(plain(message, single_line=False))
        self.query_one("#dialog-error").set_class(bool(message), "-visible")


def _json_status(area: TextArea, status: Static, empty: str = "null") -> None:
    try:
        parse_json(area.text)
    except ValueError as exc:
        status.update(plain(f"Invalid JSON: {exc}"))
        status.add_class("-invalid")
    else:
        status.update(Text("Valid JSON" if area.text.strip() else f"Empty: sent as {empty}"))
        status.remove_class("-invalid")


def _positive_int(text: str, what: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{what} must be a whole number, not {text!r}.") from None
    if value < 1:
        raise ValueError(f"{what} must be at least 1.")
    return value


class SpawnDialog(Dialog):
    TITLE_TEXT = "Spawn a task"
    ok_label = "Spawn"

    def __init__(
        self, task_types: Sequence[TaskType], queues: Sequence[str], default_queue: str = "default"
    ):
        super().__init__()
        self.task_types = {t.name: t for t in task_types}
        self.queues = list(queues)
        self.initial_queue = default_queue
        self._unknown_confirmed: tuple[str, str] | None = None

    def compose_body(self) -> ComposeResult:
        names = sorted(self.task_types)
        with VerticalScroll(classes="dialog-body"):
            yield Label("Task name")
            yield Input(
                "",
                placeholder="name of a registered task (→ completes)",
                compact=True,
                suggester=SuggestFromList(names, case_sensitive=True),
                id="task-name",
            )
            hint = ", ".join(names) if names else "none (start absurd-tui with --tasks MODULE)"
            yield Static(
                plain(f"Registered here: {hint}", single_line=False), classes="dialog-hint"
            )
            yield Label("Queue")
            yield Input(
                self.initial_queue,
                suggester=SuggestFromList(self.queues, case_sensitive=True),
                id="queue",
                compact=True,
            )
            yield Label("Params (JSON)")
            yield TextArea(
                "", id="params", soft_wrap=True, compact=True, placeholder='{"key": "value"}'
            )
            yield Static("", id="params-status", classes="json-status")
            yield Label("Max attempts")
            yield Input(
                "",
                placeholder="the task's default",
                id="max-attempts",
                type="integer",
                compact=True,
            )

    def on_mount(self) -> None:
        _json_status(
            self.query_one("#params", TextArea), self.query_one("#params-status", Static), "{}"
        )
        self.query_one("#task-name", Input).focus()

    @on(TextArea.Changed, "#params")
    def _params_changed(self, event: TextArea.Changed) -> None:
        _json_status(event.text_area, self.query_one("#params-status", Static), "{}")

    @on(Input.Changed, "#task-name")
    def _name_changed(self, event: Input.Changed) -> None:
        registered = self.task_types.get(event.value.strip())
        if registered is not None:
            self.query_one("#queue", Input).value = registered.queue

    def collect(self) -> SpawnRequest:
        name = self.query_one("#task-name", Input).value.strip()
        queue = self.query_one("#queue", Input).value.strip()
        if not name:
            raise ValueError("Give a task name.")
        if not queue:
            raise ValueError("Give a queue.")
        registered = self.task_types.get(name)
        if registered is not None and registered.queue != queue:
            raise ValueError(
                f"Task {name!r} is registered on queue {registered.queue!r}, not {queue!r}."
            )
        if registered is None and self._unknown_confirmed != (name, queue):
            # Asked once per name and queue: a second ctrl+s spawns it anyway (a worker in
            # another process may know it).
            self._unknown_confirmed = (name, queue)
            raise ValueError(
                ops.unknown_task_message(name, queue, where="this console")
                + " Press ctrl+s again to spawn it anyway."
            )
        text = self.query_one("#params", TextArea).text
        try:
            # Handlers read their params as an object: no params means {} here.
            params = parse_json(text) if text.strip() else {}
        except ValueError as exc:
            raise ValueError(f"Params are not valid JSON: {exc}") from None
        # The same rules, and words, as the CLI and the SDK.
        validate_params(params)
        max_attempts = _positive_int(self.query_one("#max-attempts", Input).value, "Max attempts")
        if max_attempts is not None:
            validate_max_attempts(max_attempts)
        return SpawnRequest(queue, name, params, max_attempts)


class AgentDialog(Dialog):
    """Prompt, model, iteration budget and queue of a new agent task."""

    TITLE_TEXT = "New agent"
    ok_label = "Start"

    def __init__(
        self,
        models: Sequence[ModelOption],
        queues: Sequence[str],
        queue: str,
        served_queues: Sequence[str],
    ):
        super().__init__()
        self.models = {option.name: option for option in models}
        self.queues = list(queues)
        self.initial_queue = queue
        self.served_queues = tuple(served_queues)
        """The queues the embedded workers run agents on (none without workers)."""

    def compose_body(self) -> ComposeResult:
        first = next((o.name for o in self.models.values() if o.available), next(iter(self.models)))
        with VerticalScroll(classes="dialog-body"):
            yield Label("Prompt")
            yield TextArea(
                "",
                id="prompt",
                soft_wrap=True,
                compact=True,
                placeholder=f'What should the agent do? Try: "{CODE_PROMPT}"',
            )
            yield Label("Model")
            yield Select(
                [(self._model_prompt(o), o.name) for o in self.models.values()],
                value=first,
                allow_blank=False,
                id="model",
                compact=True,
            )
            yield Static("", id="model-note", classes="dialog-hint")
            yield Label("Max iterations")
            yield Input(
                "",
                placeholder="20 (model turns before it must stop)",
                id="max-iterations",
                type="integer",
                compact=True,
            )
            yield Label("Queue")
            yield Input(
                self.initial_queue,
                suggester=SuggestFromList(self.queues, case_sensitive=True),
                id="queue",
                compact=True,
            )
            yield Static("", id="queue-note", classes="dialog-hint")

    @staticmethod
    def _model_prompt(option: ModelOption) -> str:
        return option.label if option.available else f"{option.label} (unavailable)"

    def on_mount(self) -> None:
        self._show_model_note(self.query_one("#model", Select).value)
        self._show_queue_note(self.initial_queue)
        self.query_one("#prompt", TextArea).focus()

    @on(Select.Changed, "#model")
    def _model_changed(self, event: Select.Changed) -> None:
        self._show_model_note(event.value)

    @on(Input.Changed, "#queue")
    def _queue_changed(self, event: Input.Changed) -> None:
        self._show_queue_note(event.value.strip())

    def _show_model_note(self, name: Any) -> None:
        option = self.models.get(name) if isinstance(name, str) else None
        note = self.query_one("#model-note", Static)
        note.update(plain(option.note if option else ""))
        note.set_class(option is not None and not option.available, "-warning")

    def _show_queue_note(self, queue: str) -> None:
        note = self.query_one("#queue-note", Static)
        if not queue or queue in self.served_queues:
            text = "Run here by the embedded workers." if queue else ""
        elif self.served_queues:
            text = (
                f"No embedded worker runs agents on {queue!r}: a worker that registers the "
                "agent for that queue must pick it up."
            )
        else:
            text = "No embedded workers: a worker process must pick it up (absurd-tui worker)."
        note.update(plain(text, single_line=False))
        note.set_class(bool(queue) and queue not in self.served_queues, "-warning")

    def collect(self) -> AgentRequest:
        prompt = self.query_one("#prompt", TextArea).text.strip()
        if not prompt:
            raise ValueError("Write a prompt: what should the agent do?")
        name = self.query_one("#model", Select).value
        option = self.models.get(name) if isinstance(name, str) else None
        if option is None:
            raise ValueError("Choose a model.")
        if not option.available:
            raise ValueError(
                f"{option.label} is {option.note}. Choose {self._fallback()}, "
                "or restart absurd-tui with the key set."
            )
        max_iterations = _positive_int(
            self.query_one("#max-iterations", Input).value, "Max iterations"
        )
        if max_iterations is not None and max_iterations > MAX_ITERATIONS_LIMIT:
            raise ValueError(f"Max iterations must be at most {MAX_ITERATIONS_LIMIT}.")
        queue = self.query_one("#queue", Input).value.strip()
        if not queue:
            raise ValueError("Give a queue.")
        try:
            agent_params(prompt, model=option.name, max_iterations=max_iterations)
        except AgentParamsError as exc:
            raise ValueError(str(exc)) from None
        return AgentRequest(queue, prompt, option.name, max_iterations)

    def _fallback(self) -> str:
        return next((o.label for o in self.models.values() if o.available), "another model")


class AnswerDialog(Dialog):
    """The person's answer to an agent's ask_human question."""

    TITLE_TEXT = "Answer the agent"
    ok_label = "Send"

    def __init__(self, question: PendingQuestion, timeout: str | None = None):
        super().__init__()
        self.question = question
        self.timeout = timeout
        """When the wait gives up, as text, if it has a timeout."""

    def compose_body(self) -> ComposeResult:
        with VerticalScroll(classes="dialog-body"):
            yield Label("The agent asks")
            yield Static(
                plain(self.question.question, single_line=False),
                classes="dialog-subject",
                id="question",
            )
            yield Label("Your answer")
            yield Input(
                "", placeholder="type the answer, Enter sends it", id="answer", compact=True
            )
            hint = f"Sent as event {self.question.event_name} on queue {self.question.queue}; the first answer wins."
            if self.timeout:
                hint += f" The agent stops waiting {self.timeout}."
            yield Static(plain(hint, single_line=False), classes="dialog-hint")

    def on_mount(self) -> None:
        self.query_one("#answer", Input).focus()

    @on(Input.Submitted, "#answer")
    def _submitted(self) -> None:
        self.action_submit()

    def collect(self) -> str:
        text = self.query_one("#answer", Input).value.strip()
        if not text:
            raise ValueError("Type an answer for the agent.")
        return text


class EmitDialog(Dialog):
    TITLE_TEXT = "Emit an event"
    ok_label = "Emit"

    def __init__(
        self,
        queues: Sequence[str],
        queue: str = DEFAULT_QUEUE,
        event_name: str = "",
        waiting: Mapping[tuple[str, str], int] | None = None,
    ):
        super().__init__()
        self.queues = list(queues)
        self.initial_queue = queue
        self.initial_event = event_name
        self.waiting = dict(waiting) if waiting is not None else None
        """Pending waits by (queue, event name); None if they could not be read."""

    def compose_body(self) -> ComposeResult:
        names = sorted({name for _, name in self.waiting or {}})
        with VerticalScroll(classes="dialog-body"):
            yield Label("Event name")
            yield Input(
                self.initial_event,
                placeholder="e.g. order-42.paid",
                id="event-name",
                compact=True,
                suggester=SuggestFromList(names, case_sensitive=True),
            )
            yield Static(self._waited_for(), classes="dialog-hint", id="waited-for")
            yield Label("Queue")
            yield Input(
                self.initial_queue,
                suggester=SuggestFromList(self.queues, case_sensitive=True),
                id="queue",
                compact=True,
            )
            yield Label("Payload (JSON)")
            yield TextArea(
                "", id="payload", soft_wrap=True, compact=True, placeholder='{"key": "value"}'
            )
            yield Static("", id="payload-status", classes="json-status")
            yield Static("", classes="dialog-hint", id="wakes")
            yield Static(
                "Events are emitted once: a second emit of the same name is ignored.",
                classes="dialog-hint",
            )

    def _waited_for(self) -> Text:
        if self.waiting is None:
            return Text("(the pending waits could not be read)")
        if not self.waiting:
            return Text("No task is waiting for an event now.")
        top = sorted(self.waiting.items(), key=lambda item: (-item[1], item[0]))[:5]
        listed = ", ".join(f"{name} ({queue}, {count})" for (queue, name), count in top)
        more = f" and {len(self.waiting) - 5} more" if len(self.waiting) > 5 else ""
        return plain(f"Waited for: {listed}{more}", single_line=False)

    def wakes(self) -> int | None:
        """How many pending waits an emit of the current name on the current queue wakes."""
        if self.waiting is None:
            return None
        name = self.query_one("#event-name", Input).value.strip()
        queue = self.query_one("#queue", Input).value.strip()
        return self.waiting.get((queue, name), 0)

    def _show_wakes(self) -> None:
        name = self.query_one("#event-name", Input).value.strip()
        queue = self.query_one("#queue", Input).value.strip()
        count = self.wakes()
        if count is None or not name:
            text = ""
        elif count:
            text = f"This emit wakes {count} waiting task{'' if count == 1 else 's'} on {queue}."
        else:
            text = (
                f"No task on {queue} waits for {name} now: this emit wakes nothing yet "
                "(a later wait for it returns at once)."
            )
        self.query_one("#wakes", Static).update(plain(text, single_line=False))

    @on(Input.Changed, "#event-name")
    def _event_changed(self, event: Input.Changed) -> None:
        # A name that tasks wait for on exactly one other queue: emit it there.
        name = event.value.strip()
        queue = self.query_one("#queue", Input)
        if self.waiting and (queue.value.strip(), name) not in self.waiting:
            queues = [q for (q, n) in self.waiting if n == name]
            if len(queues) == 1:
                queue.value = queues[0]
        self._show_wakes()

    @on(Input.Changed, "#queue")
    def _queue_changed(self) -> None:
        self._show_wakes()

    def on_mount(self) -> None:
        _json_status(
            self.query_one("#payload", TextArea), self.query_one("#payload-status", Static)
        )
        self._show_wakes()
        target = "#payload" if self.initial_event else "#event-name"
        self.query_one(target).focus()

    @on(TextArea.Changed, "#payload")
    def _payload_changed(self, event: TextArea.Changed) -> None:
        _json_status(event.text_area, self.query_one("#payload-status", Static))

    def collect(self) -> EmitRequest:
        name = self.query_one("#event-name", Input).value.strip()
        queue = self.query_one("#queue", Input).value.strip()
        if not name:
            raise ValueError("Give an event name.")
        if not queue:
            raise ValueError("Give a queue.")
        try:
            payload = parse_json(self.query_one("#payload", TextArea).text)
        except ValueError as exc:
            raise ValueError(f"Payload is not valid JSON: {exc}") from None
        return EmitRequest(queue, name, payload)


class RetryDialog(Dialog):
    TITLE_TEXT = "Retry a failed task"
    ok_label = "Retry"

    def __init__(self, task_label: str, attempts: int, max_attempts: int | None):
        super().__init__()
        self.task_label = task_label
        self.attempts = attempts
        self.max_attempts = max_attempts

    def compose_body(self) -> ComposeResult:
        with Vertical(classes="dialog-body"):
            yield Static(plain(self.task_label), classes="dialog-subject")
            with RadioSet(id="mode"):
                yield RadioButton("In place, with more attempts", value=True, id="in-place")
                yield RadioButton("As a new task (same name and params)", id="new-task")
            yield Label("Extra attempts (in place)")
            yield Input("1", id="extra", type="integer", compact=True)
            yield Static(
                f"It has used {self.attempts} of "
                f"{self.max_attempts if self.max_attempts is not None else 'unlimited'} attempts.",
                classes="dialog-hint",
            )

    def on_mount(self) -> None:
        self.query_one(RadioSet).focus()

    def collect(self) -> RetryRequest:
        spawn_new = self.query_one("#new-task", RadioButton).value
        if spawn_new:
            return RetryRequest(spawn_new=True, max_attempts=None)
        extra = _positive_int(self.query_one("#extra", Input).value, "Extra attempts") or 1
        return RetryRequest(spawn_new=False, max_attempts=self.attempts + extra)


class ConfirmDialog(Dialog):
    """Yes or no for a destructive command; dismisses with True or None."""

    ok_variant = "error"
    dismiss_label = "Back"

    def __init__(self, title: str, message: str | Text, confirm: str = "Confirm"):
        super().__init__()
        self.TITLE_TEXT = title
        self.message = message
        self.ok_label = confirm

    def compose_body(self) -> ComposeResult:
        message = (
            self.message
            if isinstance(self.message, Text)
            else plain(self.message, single_line=False)
        )
        yield Static(message, classes="dialog-body dialog-message")

    def on_mount(self) -> None:
        self.query_one("#ok", Button).focus()

    def collect(self) -> bool:
        return True


class WorkersDialog(Dialog):
    TITLE_TEXT = "Embedded workers"
    ok_label = "Apply"

    def __init__(self, current: int):
        super().__init__()
        self.current = current

    def compose_body(self) -> ComposeResult:
        with Vertical(classes="dialog-body"):
            yield Label("Number of worker threads (0 to 64)")
            yield Input(str(self.current), id="count", type="integer", compact=True)
            yield Static(
                "Fewer threads: the extra ones finish their current step, then stop.",
                classes="dialog-hint",
            )

    def on_mount(self) -> None:
        self.query_one("#count", Input).focus()

    @on(Input.Submitted, "#count")
    def _submitted(self) -> None:
        self.action_submit()

    def collect(self) -> int:
        text = self.query_one("#count", Input).value.strip()
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"Give a whole number, not {text!r}.") from None
        if not 0 <= value <= 64:
            raise ValueError("Give a number from 0 to 64.")
        return value
