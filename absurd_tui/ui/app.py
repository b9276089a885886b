"""The absurd-tui application: refresh loop, connection state, commands, workers.

Threads and the UI: the event loop never waits on the database. Reads run in the
views' thread workers (widgets/polling.py); commands run in thread workers here; the
NOTIFY listener is a long-lived thread worker; embedded worker threads report through
``on_worker_status``, which only posts a message. Widgets are touched on the UI thread
only.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
from textual import work
from textual.app import App
from textual.color import Color
from textual.message import Message
from textual.worker import get_current_worker

from .. import ops
from ..agent import AGENT_QUEUE, AGENT_TASK, PendingQuestion, model_options
from ..config import DEFAULT_QUEUE
from ..db.errors import DatabaseError
from ..db.ids import short_id
from ..db.models import TaskFilter, TaskRef
from ..text import until
from .actions import bindings
from .commands import ActionsProvider
from .dialogs import (
    AgentDialog,
    AgentRequest,
    AnswerDialog,
    ConfirmDialog,
    EmitDialog,
    EmitRequest,
    RetryDialog,
    RetryRequest,
    SpawnDialog,
    SpawnRequest,
    WorkersDialog,
)
from .screens.help import HelpScreen
from .screens.main import MainScreen
from .screens.task_detail import TaskDetailScreen
from .source import BulkPlan, DataSource
from .widgets.polling import error_text
from .widgets.status_bar import ConnectionState, StatusBar, WorkersState

NOTIFY_CHANNELS = ("absurd_changed", "absurd_ready")
NOTIFY_DEBOUNCE = 0.15
"""Seconds to gather notifications into one refresh (a burst of 1,000 is one)."""
BULK_ANNOUNCE_OVER = 100
"""A bulk operation on more tasks than this says when it starts."""
BULK_PROGRESS_EVERY = 1_000
"""A long bulk operation reports its progress every this many tasks."""
BACKOFF = (1, 2, 4, 8, 15)
"""Seconds between reconnection attempts while the database is unreachable."""


class DatabaseChanged(Message):
    """A NOTIFY arrived: something in the engine changed."""


class WorkersChanged(Message):
    """An embedded worker thread changed state (posted from that thread)."""


class AbsurdApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "absurd-tui"
    COMMANDS = App.COMMANDS | {ActionsProvider}
    # p is bound to both pause and resume; check_action hides whichever does not apply.
    BINDINGS = bindings("app")

    def __init__(
        self,
        source: DataSource,
        *,
        workers: Any = None,
        worker_queues: Sequence[str] = (),
        refresh: float = 1.0,
        listen: bool = True,
        clock: Callable[[], datetime] | None = None,
        monotonic: Callable[[], float] | None = None,
        theme: str = "textual-dark",
    ):
        super().__init__()
        self.source = source
        self.worker_pool = workers
        self.worker_queues = tuple(worker_queues)
        self.workers_paused = False
        self.refresh_interval = refresh
        self.listen = listen
        self._clock = clock or (lambda: datetime.now(UTC))
        self.monotonic = monotonic or time.monotonic
        self.theme = theme
        self.colours: dict[str, str] = {}
        self.connection = ConnectionState()
        self._failures = 0
        self.outages_reported = 0
        self._refresh_pending = False
        self._workers_signalled = threading.Event()
        self._change_signalled = threading.Event()
        self.known_queues: list[str] = []

    # -- time and theme

    def now(self) -> datetime:
        return self._clock()

    def _resolve_colours(self) -> None:
        variables = self.get_css_variables()
        background = Color.parse(variables.get("background", "#000000"))
        colours = {}
        for name in (
            "success",
            "error",
            "warning",
            "accent",
            "secondary",
            "primary",
            "foreground",
            "foreground-muted",
        ):
            try:
                colour = Color.parse(variables[name])
            except Exception:
                continue
            colours[name] = (background + colour).hex6 if colour.a < 1 else colour.hex6
        self.colours = colours

    def watch_theme(self) -> None:
        self._resolve_colours()
        # Only a running app has timers; a theme set before that needs no refresh.
        if self.is_running:
            self.request_refresh()

    # -- lifecycle

    def on_mount(self) -> None:
        self._resolve_colours()
        self.push_screen(MainScreen())
        self.set_interval(self.refresh_interval, self.tick)
        if self.listen:
            self._listen()
        if self.worker_pool is not None and not getattr(self.worker_pool, "running", False):
            # Started here unless the caller already started it.
            self._start_workers()
        self.call_after_refresh(self.tick)

    @work(thread=True, group="workers")
    def _start_workers(self) -> None:
        try:
            self.worker_pool.start()
        except (DatabaseError, psycopg.Error) as exc:
            self.notify(
                f"Embedded workers could not start: {error_text(exc)}",
                severity="error",
                markup=False,
            )
        self.post_message(WorkersChanged())

    def on_worker_status(self, *_: Any) -> None:
        """Callback for the worker pool; runs on worker threads: only post a message."""
        if not self._workers_signalled.is_set():
            self._workers_signalled.set()
            self.post_message(WorkersChanged())

    def on_workers_changed(self, _: WorkersChanged) -> None:
        self._workers_signalled.clear()
        self._update_worker_state()
        screen = self.main_screen
        if screen is not None and screen.is_mounted:
            screen.workers_view.show_embedded()

    def worker_state(self) -> WorkersState:
        if self.worker_pool is None:
            return WorkersState()
        statuses = self.worker_pool.statuses()
        return WorkersState(
            embedded=True,
            total=len(statuses),
            busy=sum(1 for s in statuses if s.state == "running"),
            paused=self.workers_paused,
            disconnected=sum(1 for s in statuses if s.state == "disconnected"),
        )

    def _update_worker_state(self) -> None:
        state = self.worker_state()
        for bar in self.query_status_bars():
            bar.worker_state = state

    def query_status_bars(self) -> list[StatusBar]:
        bars = []
        for screen in self.screen_stack:
            bars.extend(screen.query(StatusBar))
        return bars

    @property
    def main_screen(self) -> MainScreen | None:
        for screen in self.screen_stack:
            if isinstance(screen, MainScreen):
                return screen
        return None

    def _base_screen(self):
        """The topmost full screen (under any dialog): the one whose views are seen."""
        for screen in reversed(self.screen_stack):
            if isinstance(screen, (MainScreen, TaskDetailScreen)):
                return screen
        return None

    # -- refresh loop

    def tick(self) -> None:
        self._update_worker_state()
        if (
            not self.connection.connected
            and self.connection.retry_at is not None
            and self.monotonic() < self.connection.retry_at
        ):
            return
        screen = self._base_screen()
        if screen is not None and screen.is_mounted:
            screen.refresh_views()

    def request_refresh(self) -> None:
        """Refresh soon, gathering a burst of requests into one refresh."""
        if self._refresh_pending:
            return
        self._refresh_pending = True

        def run() -> None:
            self._refresh_pending = False
            self.tick()

        self.set_timer(NOTIFY_DEBOUNCE, run)

    def _signal_change(self) -> None:
        """From the listener thread: one message until the UI has taken it, however
        many notifications arrive (a burst of 1,000 spawns is one refresh)."""
        if not self._change_signalled.is_set():
            self._change_signalled.set()
            self.post_message(DatabaseChanged())

    def on_database_changed(self, _: DatabaseChanged) -> None:
        self._change_signalled.clear()
        self.request_refresh()

    def action_refresh_now(self) -> None:
        self.tick()

    # -- connection state (shown once, in the status bar)

    def _set_connection(self, state: ConnectionState) -> None:
        self.connection = state
        for bar in self.query_status_bars():
            bar.connection = state

    def report_success(self) -> None:
        was_down = not self.connection.connected
        self._failures = 0
        self._set_connection(ConnectionState(connected=True, last_refresh=self.monotonic()))
        if was_down:
            self.notify("Reconnected to the database.", title="Database", markup=False)

    def report_unavailable(self, exc: BaseException) -> None:
        first = self.connection.connected
        delay = BACKOFF[min(self._failures, len(BACKOFF) - 1)]
        self._failures += 1
        message = error_text(exc)
        self._set_connection(
            ConnectionState(
                connected=False,
                error=message,
                retry_at=self.monotonic() + delay,
                last_refresh=self.connection.last_refresh,
            )
        )
        if first:
            self.outages_reported += 1
            self.notify(
                f"{message}\nShowing the last data read; retrying by itself.",
                title="Database unreachable",
                severity="error",
                timeout=8,
                markup=False,
            )

    # -- listening for NOTIFY

    @work(thread=True, group="listen")
    def _listen(self) -> None:
        worker = get_current_worker()
        failures = 0
        stop = threading.Event()
        while not worker.is_cancelled:
            try:
                conn = self.source.listen(NOTIFY_CHANNELS)
            except (DatabaseError, psycopg.Error):
                # The polls report the outage; the listener just tries again later.
                stop.wait(BACKOFF[min(failures, len(BACKOFF) - 1)])
                failures += 1
                continue
            failures = 0
            try:
                with conn:
                    self._signal_change()
                    while not worker.is_cancelled:
                        for _ in conn.notifies(timeout=1.0, stop_after=1000):
                            if worker.is_cancelled:
                                break
                            self._signal_change()
            except psycopg.Error:
                # Connection lost: reconnect at the top of the loop.
                stop.wait(1.0)

    # -- commands

    def run_command(
        self,
        description: str,
        command: Callable[[], ops.Outcome],
        then: Callable[[Any], None] | None = None,
    ) -> None:
        """Run ``command`` (an ops operation) in a thread and report its outcome's
        message; call ``then(outcome)`` on the UI thread when it did what was asked."""
        self._command(description, command, then)

    @work(thread=True, group="commands")
    def _command(
        self,
        description: str,
        command: Callable[[], ops.Outcome],
        then: Callable[[Any], None] | None,
    ) -> None:
        try:
            outcome = command()
        except ops.OpsError as exc:
            self._report_failure(description, exc)
            return
        self.notify(
            outcome.message, severity="information" if outcome.ok else "warning", markup=False
        )
        self.call_from_thread(self.request_refresh)
        if then is not None and outcome.ok:
            self.call_from_thread(then, outcome)

    def _report_failure(self, description: str, exc: ops.OpsError) -> None:
        """From a command thread: say why ``description`` did not happen."""
        if exc.unreachable:
            self.notify(
                f"{description} was not done: the database is unreachable. Nothing was "
                f"changed.\n{exc}",
                title="Not done",
                severity="error",
                markup=False,
            )
            self.call_from_thread(self.report_unavailable, exc)
            return
        title = {
            ops.ErrorKind.TIMED_OUT: "Timed out",
            ops.ErrorKind.CONFLICT: "Try again",
        }.get(exc.kind, "Refused")
        self.notify(f"{description} failed: {exc}", title=title, severity="error", markup=False)

    # -- app-wide actions

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("pause_workers", "resume_workers"):
            if self.worker_pool is None:
                return None if action == "pause_workers" else False
            return (action == "resume_workers") == self.workers_paused
        if action == "set_workers":
            return self.worker_pool is not None or None
        return True

    def action_spawn(self) -> None:
        types = self.source.task_types()

        def submitted(request: SpawnRequest | None) -> None:
            if request is None:
                return
            self.run_command(
                f"Spawning {request.task_name}",
                lambda: self.source.spawn(
                    request.queue, request.task_name, request.params, request.max_attempts
                ),
            )

        self.push_screen(
            SpawnDialog(types, self.known_queues, self._current_queue() or DEFAULT_QUEUE), submitted
        )

    def action_new_agent(self) -> None:
        registered = {t.name: t.queue for t in self.source.task_types()}
        queue = registered.get(AGENT_TASK, AGENT_QUEUE)
        # The embedded workers run agents on the queue the agent is registered for.
        served = (queue,) if self.worker_pool is not None and queue in self.worker_queues else ()

        def submitted(request: AgentRequest | None) -> None:
            if request is None:
                return
            self.run_command(
                "Starting the agent",
                lambda: self.source.spawn_agent(
                    request.queue, request.prompt, request.model, request.max_iterations
                ),
                lambda spawned: self.open_task(spawned.queue, spawned.task_id, AGENT_TASK),
            )

        self.push_screen(AgentDialog(model_options(), self.known_queues, queue, served), submitted)

    def answer_question(self, question: PendingQuestion) -> None:
        timeout = until(question.timeout_at, self.now()) if question.timeout_at else None

        def submitted(text: str | None) -> None:
            if text is None:
                return
            self.run_command(
                "Answering the agent",
                lambda: self.source.answer(question.queue, question.event_name, text),
            )

        self.push_screen(AnswerDialog(question, timeout), submitted)

    def action_emit(self) -> None:
        queue = self._current_queue() or DEFAULT_QUEUE
        self.open_emit(queue, "")

    def open_emit(self, queue: str, event_name: str) -> None:
        def submitted(request: EmitRequest | None) -> None:
            if request is None:
                return
            self.run_command(
                f"Emitting {request.event_name}",
                lambda: self.source.emit(request.queue, request.event_name, request.payload),
            )

        self.push_screen(EmitDialog(self.known_queues, queue, event_name), submitted)

    def _current_queue(self) -> str | None:
        screen = self.main_screen
        if screen is None or not screen.is_mounted:
            return None
        return screen.tasks_view.flt.queue

    def action_pause_workers(self) -> None:
        self._set_paused(True)

    def action_resume_workers(self) -> None:
        self._set_paused(False)

    def _set_paused(self, paused: bool) -> None:
        if self.worker_pool is None:
            return
        (self.worker_pool.pause if paused else self.worker_pool.resume)()
        self.workers_paused = paused
        self.refresh_bindings()
        self._update_worker_state()
        if self.main_screen is not None:
            self.main_screen.workers_view.show_embedded()
        self.notify(
            "Workers paused: running steps finish, nothing new is claimed."
            if paused
            else "Workers resumed.",
            markup=False,
        )

    def action_set_workers(self) -> None:
        if self.worker_pool is None:
            return
        current = len(self.worker_pool.statuses())

        def submitted(count: int | None) -> None:
            if count is None or count == current:
                return
            self._resize_workers(count)

        self.push_screen(WorkersDialog(current), submitted)

    @work(thread=True, group="workers")
    def _resize_workers(self, count: int) -> None:
        # Shrinking waits for threads to finish their step: keep it off the UI thread.
        self.worker_pool.resize(count)
        self.notify(f"Embedded workers: {count} threads.", markup=False)
        self.post_message(WorkersChanged())

    def action_show_tab(self, name: str) -> None:
        while isinstance(self.screen, TaskDetailScreen):
            self.pop_screen()
        screen = self.main_screen
        if screen is not None and self.screen is screen:
            screen.show_tab(name)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    # -- task actions (called by the views and the detail screen)

    def open_task(self, queue: str, task_id: uuid.UUID, task_name: str | None = None) -> None:
        """Open a task's detail; ``task_name``, when known, picks its first tab."""
        self.push_screen(TaskDetailScreen(queue, task_id, task_name))

    def retry_task(
        self,
        queue: str,
        task_id: uuid.UUID,
        name: str,
        attempts: int,
        max_attempts: int | None,
        state: str,
    ) -> None:
        refusal = ops.retry_refusal(state)
        if refusal is not None:
            self.notify(refusal, severity="warning", markup=False)
            return
        task = TaskRef(queue, task_id, name, state)

        def submitted(request: RetryRequest | None) -> None:
            if request is None:
                return
            self.run_command(
                f"Retrying {short_id(task_id)}",
                lambda: self.source.retry(
                    task, spawn_new=request.spawn_new, max_attempts=request.max_attempts
                ),
            )

        self.push_screen(
            RetryDialog(f"{name}  {task_id}  ({queue})", attempts, max_attempts), submitted
        )

    def cancel_task(self, queue: str, task_id: uuid.UUID, name: str, state: str) -> None:
        refusal = ops.cancel_refusal(state)
        if refusal is not None:
            self.notify(refusal, severity="warning", markup=False)
            return
        task = TaskRef(queue, task_id, name, state)

        def confirmed(yes: bool | None) -> None:
            if not yes:
                return
            self.run_command(f"Cancelling {short_id(task_id)}", lambda: self.source.cancel(task))

        self.push_screen(
            ConfirmDialog(
                "Cancel task",
                f"Cancel {name} ({task_id}) on queue {queue}, now {state}?\n"
                "A running step finishes, but the task makes no further progress.",
                "Cancel task",
            ),
            confirmed,
        )

    def bulk(self, operation: ops.BulkOperation, flt: TaskFilter) -> None:
        if not ops.bulk_states(operation, flt.state):
            self.notify(ops.bulk_excluded_message(operation), severity="warning", markup=False)
            return
        self._plan_bulk(operation, flt)

    @work(thread=True, group="commands")
    def _plan_bulk(self, operation: ops.BulkOperation, flt: TaskFilter) -> None:
        try:
            plan = self.source.plan_bulk(operation, flt)
        except ops.OpsError as exc:
            self._report_failure(f"Listing the tasks to {operation}", exc)
            return
        self.call_from_thread(self._confirm_bulk, plan)

    def _confirm_bulk(self, plan: BulkPlan) -> None:
        count = len(plan.tasks)
        if count == 0:
            self.notify(plan.empty_message, severity="warning", markup=False)
            return

        def progress(processed: int, total: int) -> None:
            # From the command thread (notify is thread-safe): now and then, not per task.
            if processed % BULK_PROGRESS_EVERY == 0 and processed < total:
                self.notify(plan.progress_message(processed), markup=False)

        def confirmed(yes: bool | None) -> None:
            if not yes:
                return
            if count > BULK_ANNOUNCE_OVER:
                self.notify(plan.started_message, markup=False)
            self.run_command(plan.title, lambda: self.source.run_bulk(plan, progress))

        self.push_screen(
            ConfirmDialog(plan.title, plan.question, f"{plan.verb} {count:,}"), confirmed
        )
