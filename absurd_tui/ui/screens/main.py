"""The main screen: Tasks (queues, filter, task table), Events and Workers tabs."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, replace
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import (
    Footer,
    Header,
    Input,
    Label,
    Select,
    Static,
    TabbedContent,
    TabPane,
)

from ... import ops
from ...db.reads import (
    STATES,
    Count,
    QueueSummary,
    TaskFilter,
    TaskRow,
    WaitInfo,
    short_id,
)
from ...text import (
    age,
    attempts,
    count_label,
    json_preview,
    muted,
    plain,
    state_text,
    until,
)
from ..actions import bindings, dimmed_action, why_not
from ..source import EventsSnapshot, TasksSnapshot
from ..widgets.keyed_table import KeyedTable
from ..widgets.polling import PollingView
from ..widgets.status_bar import StatusBar

ALL_QUEUES = "*"
PAGE_SIZE = 100
COUNT_EVERY = 5.0
"""Seconds between match counts of a name or id search (capped, but not free)."""


class OpenTable(KeyedTable):
    """A table whose Enter opens the selected row (and says so in the footer)."""

    BINDINGS = [Binding("enter", "select_cursor", "Open")]


class TasksTable(OpenTable):
    pass


@dataclass(frozen=True)
class TasksParams:
    flt: TaskFilter
    after: uuid.UUID | None
    count: bool


class TasksView(PollingView):
    """Queues with their counts, the filter bar, and one page of the task table."""

    BINDINGS = bindings("tasks")

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.flt = TaskFilter()
        self.pages: list[uuid.UUID | None] = []
        """``after`` of each page before the current one (newest first)."""
        self.after: uuid.UUID | None = None
        self.rows: dict[str, TaskRow] = {}
        self.summaries: tuple[QueueSummary, ...] = ()
        self.next_after: uuid.UUID | None = None
        self.matches: Count | None = None
        self._counted: tuple[TaskFilter, float] | None = None

    def compose(self) -> ComposeResult:
        yield KeyedTable(
            [
                ("queue", "Queue"),
                ("pending", "Pending"),
                ("running", "Running"),
                ("sleeping", "Sleeping"),
                ("completed", "Completed"),
                ("failed", "Failed"),
                ("cancelled", "Cancelled"),
                ("claimable", "Claimable"),
                ("lag", "Oldest wait"),
            ],
            id="queues",
            zebra_stripes=False,
        )
        with Horizontal(id="filter-bar"):
            yield Label("State", classes="filter-label")
            yield Select(
                [(state, state) for state in STATES],
                prompt="all states",
                allow_blank=True,
                id="state-filter",
                compact=True,
            )
            yield Input(placeholder="name prefix", id="name-filter", compact=True)
            yield Input(placeholder="/ search id or name", id="search", compact=True)
            yield Static("", id="matches")
        yield Static("", id="tasks-error", classes="view-error")
        yield TasksTable(
            [
                ("id", "Id"),
                ("name", "Task"),
                ("queue", "Queue"),
                ("state", "State"),
                ("attempt", "Attempt"),
                ("step", "Current step"),
                ("updated", "Updated"),
                ("worker", "Worker"),
            ],
            id="tasks",
        )

    # -- polling

    def poll_params(self) -> TasksParams:
        due = True
        if self.flt.name or self.flt.search:
            # A capped count of a search still reads up to 10,001 rows: do it when the
            # filter changes and then every few seconds, not every refresh.
            due = (
                self._counted is None
                or self._counted[0] != self.flt
                or time.monotonic() - self._counted[1] > COUNT_EVERY
            )
        return TasksParams(self.flt, self.after, due)

    def fetch(self, params: TasksParams) -> TasksSnapshot:
        return self.app.source.tasks(params.flt, PAGE_SIZE, params.after, params.count)

    def same_params(self, a: TasksParams, b: TasksParams) -> bool:
        # Whether the match count was due is not part of what makes a snapshot stale.
        return (a.flt, a.after) == (b.flt, b.after)

    def apply(self, snapshot: TasksSnapshot) -> None:
        self.summaries = snapshot.queues
        self.app.known_queues = [summary.queue for summary in snapshot.queues]
        self.next_after = snapshot.page.next_after
        if snapshot.counted:
            self.matches = snapshot.page.matches
            self._counted = (self.flt, time.monotonic())
        self._apply_queues(snapshot.queues)
        self._apply_tasks(snapshot.page.rows)
        self._show_matches()
        self.screen.refresh_bindings()

    def _apply_queues(self, summaries: tuple[QueueSummary, ...]) -> None:
        now = self.app.now()
        colours = self.app.colours
        total: dict[str, Count] = {state: Count(0) for state in STATES}
        claimable = Count(0)
        oldest = None
        rows = []
        for summary in summaries:
            for state in STATES:
                total[state] = total[state] + summary.count(state)
            claimable = claimable + summary.claimable
            if summary.oldest_claimable_at and (
                oldest is None or summary.oldest_claimable_at < oldest
            ):
                oldest = summary.oldest_claimable_at
            rows.append(
                (
                    summary.queue,
                    self._queue_cells(
                        plain(summary.queue),
                        summary.count,
                        summary.claimable,
                        summary.oldest_claimable_at,
                        now,
                        colours,
                    ),
                )
            )
        all_row = self._queue_cells(
            Text("All queues", style="bold"), total.__getitem__, claimable, oldest, now, colours
        )
        table = self.query_one("#queues", KeyedTable)
        table.apply([(ALL_QUEUES, all_row), *rows])

    @staticmethod
    def _queue_cells(name, count, claimable, oldest, now, colours) -> tuple:
        cells: list[Any] = [name]
        for state in STATES:
            value = count(state)
            text = Text(count_label(value), justify="right")
            if value.value and state in ("failed", "running"):
                text.stylize(colours.get("error" if state == "failed" else "primary", ""))
            cells.append(text)
        cells.append(Text(count_label(claimable), justify="right"))
        cells.append(Text(age(oldest, now), justify="right"))
        return tuple(cells)

    def _apply_tasks(self, rows: tuple[TaskRow, ...]) -> None:
        now = self.app.now()
        colours = self.app.colours
        self.rows = {row.key: row for row in rows}
        table = self.query_one("#tasks", TasksTable)
        table.apply([(row.key, self._task_cells(row, now, colours)) for row in rows])

    @staticmethod
    def _task_cells(row: TaskRow, now, colours) -> tuple:
        step = row.step
        if row.state == "sleeping" and row.wake_event:
            event = row.wake_event
            agent_prefix = f"agent:{row.task_id}:"
            if event.startswith(agent_prefix):
                # An agent's ask_human (agent.answer_event_name): the tail says enough.
                event = event[len(agent_prefix) :]
            waiting = f"(awaits {event})"
            step_text = plain(f"{step} {waiting}" if step else waiting, limit=40)
        else:
            step_text = plain(step or "", limit=32)
        return (
            Text(short_id(row.task_id), style=colours.get("foreground-muted", "")),
            plain(row.task_name, "bold", limit=40),
            plain(row.queue, limit=20),
            state_text(row.state, colours),
            Text(attempts(row.attempts, row.max_attempts), justify="right"),
            step_text,
            Text(age(row.updated_at, now), justify="right"),
            plain(row.worker or "", limit=28),
        )

    def _show_matches(self) -> None:
        label = "…" if self.matches is None else count_label(self.matches)
        page = len(self.pages) + 1
        more = ", more: ]" if self.next_after else ""
        back = "[ newer, " if self.pages else ""
        noun = (
            "task"
            if self.matches is not None and self.matches.value == 1 and not self.matches.capped
            else "tasks"
        )
        text = f"{label} {noun} · page {page} ({back}{len(self.rows)} shown{more})"
        self.query_one("#matches", Static).update(Text(text))

    def show_error(self, message: str | None) -> None:
        error = self.query_one("#tasks-error", Static)
        error.update(plain(f"Could not read tasks: {message}" if message else ""))
        error.set_class(bool(message), "-visible")

    # -- filter changes

    def set_filter(self, **changes: Any) -> None:
        flt = replace(self.flt, **changes)
        if flt == self.flt:
            return
        self.flt = flt
        self.pages = []
        self.after = None
        self.matches = None
        self._show_matches()
        self.screen.refresh_bindings()
        self.poll()

    @on(KeyedTable.RowHighlighted, "#queues")
    def _queue_highlighted(self, event: KeyedTable.RowHighlighted) -> None:
        key = event.row_key.value
        self.set_filter(queue=None if key in (None, ALL_QUEUES) else key)

    @on(Select.Changed, "#state-filter")
    def _state_changed(self, event: Select.Changed) -> None:
        value = event.value
        self.set_filter(state=None if value is Select.NULL else str(value))

    @on(Input.Changed, "#name-filter")
    def _name_changed(self, event: Input.Changed) -> None:
        self.set_filter(name=event.value.strip() or None)

    @on(Input.Changed, "#search")
    def _search_changed(self, event: Input.Changed) -> None:
        self.set_filter(search=event.value.strip() or None)

    @on(Input.Submitted)
    def _input_submitted(self) -> None:
        self.query_one("#tasks", TasksTable).focus()

    @on(KeyedTable.RowHighlighted, "#tasks")
    def _task_highlighted(self) -> None:
        self.screen.refresh_bindings()

    @on(KeyedTable.RowSelected, "#tasks")
    def _task_selected(self) -> None:
        self.action_open_task()

    # -- actions

    def on_key(self, event) -> None:
        # A dimmed key is not silently ignored: say why it does not apply.
        if isinstance(self.app.focused, Input):
            return
        action = dimmed_action(self, "tasks", event.key)
        if action in ("retry_task", "cancel_task"):
            task = self.selected
            event.stop()
            event.prevent_default()
            self.notify(
                why_not(action, task.state if task else None), severity="warning", markup=False
            )

    @property
    def selected(self) -> TaskRow | None:
        key = self.query_one("#tasks", TasksTable).cursor_key
        return self.rows.get(key) if key else None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        task = self.selected
        if action == "open_task":
            return task is not None or None
        if action == "retry_task":
            return (task is not None and ops.can_retry(task.state)) or None
        if action == "cancel_task":
            return (task is not None and ops.can_cancel(task.state)) or None
        if action in ("retry_all", "cancel_all"):
            operation: ops.BulkOperation = "retry" if action == "retry_all" else "cancel"
            return bool(ops.bulk_states(operation, self.flt.state)) or None
        if action == "next_page":
            return self.next_after is not None or None
        if action == "prev_page":
            return bool(self.pages) or None
        if action == "clear_filter":
            return bool(self.flt.state or self.flt.name or self.flt.search) or None
        return True

    def action_open_task(self) -> None:
        task = self.selected
        if task is not None:
            self.app.open_task(task.queue, task.task_id, task.task_name)

    def action_retry_task(self) -> None:
        task = self.selected
        if task is not None:
            self.app.retry_task(
                task.queue,
                task.task_id,
                task.task_name,
                task.attempts,
                task.max_attempts,
                task.state,
            )

    def action_cancel_task(self) -> None:
        task = self.selected
        if task is not None:
            self.app.cancel_task(task.queue, task.task_id, task.task_name, task.state)

    def action_retry_all(self) -> None:
        self.app.bulk("retry", self.flt)

    def action_cancel_all(self) -> None:
        self.app.bulk("cancel", self.flt)

    def action_search(self) -> None:
        self.query_one("#search", Input).focus()

    def action_cycle_state(self) -> None:
        order = [None, *STATES]
        following = order[(order.index(self.flt.state) + 1) % len(order)]
        # Filter now, not when the Select's change message arrives: a quick second
        # press must start from this state.
        self.set_filter(state=following)
        select = self.query_one("#state-filter", Select)
        select.value = Select.NULL if following is None else following

    def action_clear_filter(self) -> None:
        self.query_one("#state-filter", Select).value = Select.NULL
        self.query_one("#name-filter", Input).value = ""
        self.query_one("#search", Input).value = ""
        self.query_one("#tasks", TasksTable).focus()

    def action_next_page(self) -> None:
        if self.next_after is None:
            return
        self.pages.append(self.after)
        self.after = self.next_after
        self.poll()

    def action_prev_page(self) -> None:
        if not self.pages:
            return
        self.after = self.pages.pop()
        self.poll()


class EventsView(PollingView):
    """Pending waits across queues, and the emitted events."""

    BINDINGS = bindings("events")

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.waits: dict[str, WaitInfo] = {}

    def compose(self) -> ComposeResult:
        yield Label("Waiting for events", classes="section-title")
        yield OpenTable(
            [
                ("task", "Task"),
                ("name", "Task name"),
                ("queue", "Queue"),
                ("event", "Event"),
                ("step", "Step"),
                ("since", "Waiting"),
                ("timeout", "Timeout"),
            ],
            id="waits",
        )
        yield Label("Emitted events (newest first)", classes="section-title")
        yield KeyedTable(
            [
                ("event", "Event"),
                ("queue", "Queue"),
                ("payload", "Payload"),
                ("emitted", "Emitted"),
            ],
            id="events",
        )
        yield Static("", id="events-error", classes="view-error")

    def fetch(self, params: Any) -> EventsSnapshot:
        return self.app.source.events()

    def apply(self, snapshot: EventsSnapshot) -> None:
        now = self.app.now()
        self.waits = {}
        rows = []
        for wait in snapshot.waits:
            key = f"{wait.queue}/{wait.run_id}/{wait.step_name}"
            self.waits[key] = wait
            timeout = "none" if wait.timeout_at is None else until(wait.timeout_at, now)
            rows.append(
                (
                    key,
                    (
                        Text(
                            short_id(wait.task_id),
                            style=self.app.colours.get("foreground-muted", ""),
                        ),
                        plain(wait.task_name or "", "bold"),
                        plain(wait.queue),
                        plain(wait.event_name),
                        plain(wait.step_name),
                        Text(age(wait.created_at, now), justify="right"),
                        Text(timeout),
                    ),
                )
            )
        self.query_one("#waits", KeyedTable).apply(rows)
        self.query_one("#events", KeyedTable).apply(
            [
                (
                    f"{event.queue}/{event.event_name}",
                    (
                        plain(event.event_name, "bold"),
                        plain(event.queue),
                        json_preview(event.payload, 70),
                        Text(age(event.emitted_at, now) + " ago", justify="right"),
                    ),
                )
                for event in snapshot.events
            ]
        )
        self.screen.refresh_bindings()

    def show_error(self, message: str | None) -> None:
        error = self.query_one("#events-error", Static)
        error.update(plain(f"Could not read events: {message}" if message else ""))
        error.set_class(bool(message), "-visible")

    @property
    def selected_wait(self) -> WaitInfo | None:
        table = self.query_one("#waits", KeyedTable)
        key = table.cursor_key
        return self.waits.get(key) if key else None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "open_wait_task":
            return self.selected_wait is not None or None
        return True

    def action_emit_for_wait(self) -> None:
        wait = self.selected_wait
        if wait is None:
            self.app.action_emit()
        else:
            self.app.open_emit(wait.queue, wait.event_name)

    def action_open_wait_task(self) -> None:
        wait = self.selected_wait
        if wait is not None:
            self.app.open_task(wait.queue, wait.task_id, wait.task_name)

    @on(KeyedTable.RowSelected, "#waits")
    def _wait_selected(self) -> None:
        self.action_open_wait_task()

    @on(KeyedTable.RowHighlighted, "#waits")
    def _wait_highlighted(self) -> None:
        self.screen.refresh_bindings()


class WorkersView(PollingView):
    """The embedded worker threads (from memory) and workers seen in the database."""

    def compose(self) -> ComposeResult:
        yield Static("", id="pool-summary", classes="section-title")
        yield KeyedTable(
            [
                ("thread", "#"),
                ("worker", "Worker id"),
                ("state", "State"),
                ("task", "Task"),
                ("name", "Task name"),
                ("queue", "Queue"),
                ("step", "Step"),
                ("since", "Since"),
            ],
            id="embedded",
        )
        yield Label(
            "Workers holding running tasks (any process, any host)", classes="section-title"
        )
        yield KeyedTable(
            [
                ("worker", "Worker id"),
                ("queues", "Queues"),
                ("running", "Running"),
                ("last", "Last claim"),
                ("lease", "Lease ends"),
            ],
            id="seen",
        )
        yield Static("", id="workers-error", classes="view-error")

    def on_mount(self) -> None:
        self.show_embedded()

    def fetch(self, params: Any):
        return self.app.source.workers_seen()

    def apply(self, seen) -> None:
        now = self.app.now()
        self.query_one("#seen", KeyedTable).apply(
            [
                (
                    worker.worker,
                    (
                        plain(worker.worker, "bold"),
                        plain(", ".join(worker.queues)),
                        Text(str(worker.running), justify="right"),
                        Text(
                            age(worker.last_claim_at, now) + " ago" if worker.last_claim_at else ""
                        ),
                        Text(
                            "no lease"
                            if worker.lease_expires_at is None
                            else until(worker.lease_expires_at, now)
                        ),
                    ),
                )
                for worker in seen
            ]
        )
        self.show_embedded()

    def show_embedded(self) -> None:
        """Embedded worker statuses are in memory: read on the UI thread, no I/O."""
        app = self.app
        pool = app.worker_pool
        summary = self.query_one("#pool-summary", Static)
        table = self.query_one("#embedded", KeyedTable)
        if pool is None:
            summary.update("Embedded workers: none (started with --no-workers)")
            table.apply([])
            return
        statuses = pool.statuses()
        busy = sum(1 for s in statuses if s.state == "running")
        state = "paused" if app.workers_paused else "running"
        queues = ", ".join(app.worker_queues) or "-"
        summary.update(
            Text(
                f"Embedded workers: {len(statuses)} threads, {busy} busy, {state} · queues: {queues}"
            )
        )
        now = app.now()
        colours = app.colours
        rows = []
        for status in statuses:
            rows.append(
                (
                    str(status.index),
                    (
                        Text(str(status.index), justify="right"),
                        plain(status.worker_id),
                        state_text(status.state, colours)
                        if status.state != "idle"
                        else muted("idle", colours),
                        Text(short_id(status.task_id) if status.task_id else ""),
                        plain(status.task_name or "", "bold"),
                        plain(status.queue or ""),
                        plain(status.step or ""),
                        Text(age(status.since, now) if status.since else ""),
                    ),
                )
            )
        table.apply(rows)

    def show_error(self, message: str | None) -> None:
        error = self.query_one("#workers-error", Static)
        error.update(plain(f"Could not read workers: {message}" if message else ""))
        error.set_class(bool(message), "-visible")


class MainScreen(Screen):
    def compose(self) -> ComposeResult:
        yield Header(icon="◆")
        with TabbedContent(initial="tasks-tab", id="views"):
            with TabPane("Tasks", id="tasks-tab"):
                yield TasksView(id="tasks-view")
            with TabPane("Events", id="events-tab"):
                yield EventsView(id="events-view")
            with TabPane("Workers", id="workers-tab"):
                yield WorkersView(id="workers-view")
        yield StatusBar(self.app.source.label, self.app.monotonic, id="status")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#tasks", TasksTable).focus()

    def on_screen_resume(self) -> None:
        # Hidden views are not polled: back from a task's detail, catch up at once.
        if self.tasks_view.loaded:
            self.refresh_views()

    def action_targets(self) -> dict[str, Any]:
        """Which node runs each scope's actions now (for the command palette)."""
        active = self.query_one("#views", TabbedContent).active
        targets: dict[str, Any] = {}
        if active == "tasks-tab":
            targets["tasks"] = self.tasks_view
        elif active == "events-tab":
            targets["events"] = self.events_view
        return targets

    def visible_views(self) -> list[PollingView]:
        # The refresh timer may tick while this screen is still composing its children
        # or already tearing them down: then there is nothing to poll.
        tabbed = next(iter(self.query("#views").results(TabbedContent)), None)
        if tabbed is None:
            return []
        active = tabbed.active
        return [
            view for view in self.query(PollingView) if view.id == active.replace("-tab", "-view")
        ]

    def refresh_views(self) -> None:
        for view in self.visible_views():
            view.poll()

    @on(TabbedContent.TabActivated)
    def _tab_changed(self, event: TabbedContent.TabActivated) -> None:
        # No focus change here: focusing a widget in a pane activates that pane, so a
        # focus queued by one activation would switch back from the next one.
        self.refresh_views()
        self.refresh_bindings()

    def show_tab(self, name: str) -> None:
        self.query_one("#views", TabbedContent).active = f"{name}-tab"
        table_id = {"tasks": "#tasks", "events": "#waits", "workers": "#embedded"}[name]
        self.query_one(table_id).focus()

    @property
    def tasks_view(self) -> TasksView:
        return self.query_one(TasksView)

    @property
    def events_view(self) -> EventsView:
        return self.query_one(EventsView)

    @property
    def workers_view(self) -> WorkersView:
        return self.query_one(WorkersView)
