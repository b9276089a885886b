"""The absurd-tui application: refresh loop, connection state, commands, workers.

Threads and the UI: the event loop never waits on the database. Reads run in the
views' thread workers (widgets/polling.py); commands run in thread workers here; the
NOTIFY listener is a long-lived thread worker; embedded worker threads report through
``on_worker_status``, which only posts a message. Widgets are touched on the UI thread
only.
"""

from __future__ import annotations

import os
import select
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from textual import work
from textual.app import App
from textual.color import Color
from textual.message import Message
from textual.worker import get_current_worker

from .. import ops
from ..agent import AGENT_QUEUE, AGENT_TASK, PendingQuestion, model_options
from ..agent.sandbox import SandboxStatus, sandbox_status, start_warm_up
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
from .logbook import Logbook
from .screens.help import HelpScreen
from .screens.log import LogScreen
from .screens.main import MainScreen
from .screens.task_detail import TaskDetailScreen
from .source import BulkPlan, DataSource
from .widgets.polling import error_text
from .widgets.status_bar import ConnectionState, StatusBar, WorkersState

NOTIFY_CHANNELS = ("absurd_changed", "absurd_ready")
NOTIFY_DEBOUNCE = 0.15
"""Seconds to gather notifications into one refresh (a burst of 1,000 is one)."""
FALLBACK = 10.0
"""Seconds between reads while NOTIFY is heard: a change is announced, so the timer only
catches what nothing announces (an expired lease) and otherwise redraws ages."""
LISTEN_CHECK = 30.0
"""Seconds the listener sleeps at most between checks that it should still run."""
BULK_ANNOUNCE_OVER = 100
"""A bulk operation on more tasks than this says when it starts."""
BULK_PROGRESS_SECONDS = 0.25
"""A long bulk operation updates its progress in the status bar this often."""
QUIT_GRACE = 5.0
"""Seconds running tasks get to finish when the console quits, before they are handed back."""
BACKOFF = (1, 2, 4, 8, 15)
"""Seconds between reconnection attempts while the database is unreachable."""


class DatabaseChanged(Message):
    """A NOTIFY arrived: something in the engine changed."""


class WorkersChanged(Message):
    """An embedded worker thread changed state (posted from that thread)."""


class SandboxChanged(Message):
    """The code interpreter's sandbox is being prepared, or is ready (from its thread)."""


class StopProgress(Message):
    """The worker pool's stop: ``running`` tasks still running (posted from its thread)."""

    def __init__(self, running: int):
        super().__init__()
        self.running = running


class LogArrived(Message):
    """Something was logged (posted from the logging thread)."""


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
        warm_sandbox: bool = False,
        logbook: Logbook | None = None,
        data_dir: Path | None = None,
    ):
        super().__init__()
        self.warm_sandbox = warm_sandbox
        """Prepare the code interpreter's sandbox at start (the embedded workers run agents)."""
        self.sandbox_status: SandboxStatus | None = None
        self.data_dir = data_dir or Path.cwd()
        """Where the console writes files (whole values, screenshots)."""
        self.logbook = logbook or Logbook()
        self.log_seen = 0
        """How many warnings the user has seen in the log panel (the rest are news)."""
        self._log_signalled = threading.Event()
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
        self._stop_listening = threading.Event()
        self._wake_lock = threading.Lock()
        self._wake_listener: tuple[int, int] | None = None
        self.known_queues: list[str] = []
        self.listening = False
        """Whether the NOTIFY listener is connected (then the timer reads rarely)."""
        self.notice: str | None = None
        """A word the status bar shows above all else (say, what quitting waits for)."""
        self.stopping = False
        """Whether q was pressed and the embedded workers are stopping."""
        self.handed_back: int | None = None
        """How many runs the workers handed back when the console quit."""

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
        self.logbook.listen(self._signal_log)
        self._resolve_colours()
        self.push_screen(MainScreen())
        self.set_interval(self.refresh_interval, self._timer_tick)
        if self.listen:
            self._listen()
        if self.worker_pool is not None and not getattr(self.worker_pool, "running", False):
            # Started here unless the caller already started it.
            self._start_workers()
        if self.warm_sandbox:
            # The first start on a machine compiles the runtime (minutes): in the
            # background, said in the status bar, so an agent's first call is not slow.
            start_warm_up(lambda _: self.post_message(SandboxChanged()))
            self.post_message(SandboxChanged())
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

    def on_sandbox_changed(self, _: SandboxChanged) -> None:
        # Messages from the warming thread and from on_mount may arrive in either
        # order: show the status as it is now, and speak only of changes.
        status = sandbox_status()
        before = self.sandbox_status
        if before is not None and before.state == status.state:
            return
        self.sandbox_status = status
        for bar in self.query_status_bars():
            bar.sandbox = status
        if status.state == "warming" and "compiling" in status.message:
            self.notify(status.message.capitalize() + ".", title="Code interpreter", markup=False)
        elif status.state == "ready" and before is not None and "compiling" in before.message:
            self.notify(status.message + ".", title="Code interpreter", markup=False)
        elif status.state == "failed":
            self.notify(status.message, title="Code interpreter", severity="error", markup=False)

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

    # -- the log panel

    def _signal_log(self) -> None:
        """From any thread that logged: one message until the UI has taken it."""
        if not self._log_signalled.is_set():
            self._log_signalled.set()
            self.post_message(LogArrived())

    def on_log_arrived(self, _: LogArrived) -> None:
        self._log_signalled.clear()
        if isinstance(self.screen, LogScreen):
            self.screen.append_new()
        self._update_log_notice()

    def mark_log_seen(self) -> None:
        self.log_seen = self.logbook.warnings
        self._update_log_notice()

    def unseen_warnings(self) -> int:
        return max(0, self.logbook.warnings - self.log_seen)

    def _update_log_notice(self) -> None:
        unseen = self.unseen_warnings()
        for bar in self.query_status_bars():
            bar.log_warnings = unseen

    def on_unmount(self) -> None:
        self.logbook.listen(None)
        self._stop_listener()

    def action_show_log(self) -> None:
        if not isinstance(self.screen, LogScreen):
            self.push_screen(LogScreen())

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

    @property
    def fallback_interval(self) -> float:
        if self.listening:
            return max(self.refresh_interval, FALLBACK)
        return self.refresh_interval

    def _timer_tick(self) -> None:
        self._update_worker_state()
        if not self.connection.connected:
            self.tick()
            return
        screen = self._base_screen()
        if screen is not None and screen.is_mounted:
            for view in screen.visible_views():
                view.tick(self.fallback_interval)

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
        with self._wake_lock:
            if self._stop_listening.is_set():
                return
            self._wake_listener = os.pipe()
        try:
            self._listen_until_stopped(worker)
        finally:
            with self._wake_lock:
                for fd in self._wake_listener:
                    os.close(fd)
                self._wake_listener = None
            self.listening = False

    def _listen_until_stopped(self, worker: Any) -> None:
        failures = 0
        while not worker.is_cancelled and not self._stop_listening.is_set():
            try:
                conn = self.source.listen(NOTIFY_CHANNELS)
            except (DatabaseError, psycopg.Error):
                # The polls report the outage; the listener just tries again later.
                self._stop_listening.wait(BACKOFF[min(failures, len(BACKOFF) - 1)])
                failures += 1
                continue
            failures = 0
            try:
                with conn:
                    self.listening = True
                    self._signal_change()
                    self._hear(conn, worker)
            except psycopg.Error:
                # Connection lost: reconnect at the top of the loop; poll at the full
                # rate meanwhile, since changes go unannounced.
                self.listening = False
                self._stop_listening.wait(1.0)

    def _hear(self, conn: psycopg.Connection, worker: Any) -> None:
        """Sleep in select() until the server sends something or the app stops.

        ``conn.notifies(timeout=...)`` wakes every 0.1 s to check for interrupts; an
        idle console should not wake at all. A lost connection makes the socket
        readable, and reading it then raises.
        """
        assert self._wake_listener is not None
        wake = self._wake_listener[0]
        while not worker.is_cancelled and not self._stop_listening.is_set():
            ready, _, _ = select.select([conn.fileno(), wake], [], [], LISTEN_CHECK)
            if wake in ready:
                return
            if ready and sum(1 for _ in conn.notifies(timeout=0)):
                self._signal_change()

    def _stop_listener(self) -> None:
        with self._wake_lock:
            self._stop_listening.set()
            if self._wake_listener is not None:
                os.write(self._wake_listener[1], b"x")

    def exit(self, *args: Any, **kwargs: Any) -> None:
        # The listener sleeps in select(): wake it, or leaving waits for its thread.
        self._stop_listener()
        super().exit(*args, **kwargs)

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

        self._open_emit(queue, event_name, submitted)

    @work(thread=True, group="commands")
    def _open_emit(self, queue: str, event_name: str, submitted: Callable[..., None]) -> None:
        # The dialog offers the events tasks wait for and says how many an emit wakes.
        waiting: dict[tuple[str, str], int] | None = {}
        try:
            for wait in self.source.events().waits:
                key = (wait.queue, wait.event_name)
                waiting[key] = waiting.get(key, 0) + 1
        except ops.OpsError:
            # The dialog says the waits could not be read; the emit itself may still work.
            waiting = None
        self.call_from_thread(
            self.push_screen, EmitDialog(self.known_queues, queue, event_name, waiting), submitted
        )

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

    # -- screenshots

    def action_screenshot(self, filename: str | None = None, path: str | None = None) -> None:
        # Textual's default is ~/Downloads, which need not exist (as root it does not):
        # the console's data directory does, or is made.
        directory = Path(path) if path else self.data_dir / "screenshots"
        try:
            directory.mkdir(parents=True, exist_ok=True)
            saved = self.save_screenshot(filename, str(directory))
        except OSError as exc:
            self.notify(f"Screenshot not saved: {exc}", severity="error", markup=False)
            return
        self.notify(f"Screenshot saved to {saved}", title="Screenshot", markup=False)

    # -- quitting

    async def action_quit(self) -> None:
        pool = self.worker_pool
        if self.stopping and pool is not None:
            # Second q: running handlers stop at their next database call and their
            # runs are handed back now.
            pool.end_grace()
            self._set_notice("stopping: handing the running tasks back now")
            return
        if pool is None or not getattr(pool, "running", True):
            self.exit()
            return
        self.stopping = True
        running = self.worker_state().busy
        if running:
            noun = "task" if running == 1 else "tasks"
            self._set_notice(f"stopping: {running} {noun} running; q again to leave now")
        else:
            self._set_notice("stopping the workers")
        self._stop_workers()

    @work(thread=True, group="quit")
    def _stop_workers(self) -> None:
        handed = self.worker_pool.stop(
            grace=QUIT_GRACE, on_progress=lambda n: self.post_message(StopProgress(n))
        )
        self.call_from_thread(self._stopped, handed)

    def on_stop_progress(self, message: StopProgress) -> None:
        if not self.stopping:
            return
        if message.running:
            noun = "task" if message.running == 1 else "tasks"
            self._set_notice(f"stopping: {message.running} {noun} running; q again to leave now")
        else:
            self._set_notice("stopping: handing back")

    def _stopped(self, handed: int) -> None:
        self.handed_back = handed
        self.exit()

    def _set_notice(self, text: str | None) -> None:
        self.notice = text
        for bar in self.query_status_bars():
            bar.notice = text

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

        shown = [0.0]

        def progress(processed: int, total: int) -> None:
            # From the command thread: the status bar counts along, a few times a second.
            now = time.monotonic()
            if processed < total and now - shown[0] >= BULK_PROGRESS_SECONDS:
                shown[0] = now
                self.call_from_thread(self._set_notice, plan.progress_message(processed))

        def run() -> Any:
            try:
                return self.source.run_bulk(plan, progress)
            finally:
                self.call_from_thread(self._set_notice, None)

        def confirmed(yes: bool | None) -> None:
            if not yes:
                return
            if count > BULK_ANNOUNCE_OVER:
                self.notify(plan.started_message, markup=False)
            self.run_command(plan.title, run)

        self.push_screen(
            ConfirmDialog(plan.title, plan.question, f"{plan.verb} {count:,}"), confirmed
        )
