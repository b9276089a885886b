"""Every user action in one table: its key, footer label and description.

The key bindings of the app and its screens, the command palette and the help screen
are all generated from ACTIONS, so an action cannot exist in one and be missing from
another.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding

from .. import ops


@dataclass(frozen=True)
class ActionSpec:
    action: str
    """The action string (``retry_task`` runs ``action_retry_task``)."""
    key: str
    label: str
    """Short label for the footer."""
    description: str
    """One sentence for the help screen and the command palette."""
    scope: str
    """Where it applies: app, tasks, events, detail."""
    show: bool = True
    key_display: str | None = None
    palette: bool = True


SCOPE_TITLES = {
    "app": "Everywhere",
    "tasks": "Tasks view",
    "events": "Events view",
    "workers": "Workers view",
    "detail": "Task detail",
}

ACTIONS: tuple[ActionSpec, ...] = (
    ActionSpec(
        "spawn",
        "n",
        "Spawn",
        "Spawn a task: pick a registered task, queue, JSON params, attempts.",
        "app",
    ),
    ActionSpec(
        "new_agent",
        "a",
        "Agent",
        "New agent: start the LLM agent on a prompt and watch its transcript.",
        "app",
    ),
    ActionSpec(
        "emit", "e", "Emit", "Emit an event to a queue, waking the tasks that wait for it.", "app"
    ),
    ActionSpec(
        "pause_workers",
        "p",
        "Pause",
        "Pause the embedded workers: running steps finish, nothing new is claimed.",
        "app",
    ),
    ActionSpec("resume_workers", "p", "Resume", "Resume the embedded workers.", "app"),
    ActionSpec(
        "set_workers", "w", "Workers", "Change the number of embedded worker threads.", "app"
    ),
    ActionSpec("show_tab('tasks')", "1", "Tasks", "Show the tasks view.", "app", show=False),
    ActionSpec("show_tab('events')", "2", "Events", "Show the events view.", "app", show=False),
    ActionSpec("show_tab('workers')", "3", "Workers", "Show the workers view.", "app", show=False),
    ActionSpec("refresh_now", "ctrl+r", "Refresh", "Refresh the data now.", "app", show=False),
    ActionSpec(
        "help", "question_mark", "Help", "Show every key and action.", "app", key_display="?"
    ),
    ActionSpec(
        "quit",
        "q",
        "Quit",
        "Quit; embedded workers stop, their unfinished tasks are reclaimed.",
        "app",
    ),
    ActionSpec(
        "open_task",
        "enter",
        "Open",
        "Open the selected task: params, runs, checkpoints, waits.",
        "tasks",
        palette=True,
    ),
    ActionSpec(
        "retry_task",
        "r",
        "Retry",
        "Retry the selected failed task, in place or as a new task.",
        "tasks",
    ),
    ActionSpec(
        "cancel_task",
        "c",
        "Cancel",
        "Cancel the selected task (pending, running or sleeping).",
        "tasks",
    ),
    ActionSpec(
        "retry_all",
        "R",
        "Retry all",
        "Retry every failed task matching the filter.",
        "tasks",
        key_display="R",
    ),
    ActionSpec(
        "cancel_all",
        "C",
        "Cancel all",
        "Cancel every live task matching the filter.",
        "tasks",
        key_display="C",
    ),
    ActionSpec(
        "search",
        "slash",
        "Search",
        "Search tasks by id (prefix or tail) or name prefix.",
        "tasks",
        key_display="/",
    ),
    ActionSpec(
        "cycle_state",
        "s",
        "State",
        "Filter by the next state (all, pending, running ...).",
        "tasks",
    ),
    ActionSpec("clear_filter", "x", "Clear", "Clear the state, name and search filters.", "tasks"),
    ActionSpec(
        "next_page",
        "right_square_bracket",
        "Older",
        "Show the next page (older tasks).",
        "tasks",
        show=False,
        key_display="]",
    ),
    ActionSpec(
        "prev_page",
        "left_square_bracket",
        "Newer",
        "Show the previous page (newer tasks).",
        "tasks",
        show=False,
        key_display="[",
    ),
    ActionSpec(
        "emit_for_wait", "e", "Emit", "Emit the event the selected wait is waiting for.", "events"
    ),
    ActionSpec("open_wait_task", "enter", "Open", "Open the task of the selected wait.", "events"),
    ActionSpec(
        "retry_task", "r", "Retry", "Retry this failed task, in place or as a new task.", "detail"
    ),
    ActionSpec("cancel_task", "c", "Cancel", "Cancel this task.", "detail"),
    ActionSpec(
        "answer_question",
        "A",
        "Answer",
        "Answer the question the agent is waiting on (ask_human).",
        "detail",
        key_display="A",
    ),
    ActionSpec("emit_for_wait", "e", "Emit", "Emit the event this task waits for.", "detail"),
    ActionSpec("copy_id", "y", "Copy id", "Copy the task id to the clipboard.", "detail"),
    ActionSpec("close", "escape", "Back", "Back to the task list.", "detail"),
)


def specs(scope: str) -> list[ActionSpec]:
    return [spec for spec in ACTIONS if spec.scope == scope]


def bindings(scope: str) -> list[Binding]:
    return [
        Binding(spec.key, spec.action, spec.label, show=spec.show, key_display=spec.key_display)
        for spec in specs(scope)
    ]


def why_not(action: str, state: str | None) -> str:
    """What to tell a user who pressed the key of a dimmed action."""
    if action == "answer_question":
        return "The agent is not waiting for an answer now."
    if state is None:
        return "Select a task first."
    if action == "retry_task":
        return ops.retry_refusal(state) or "Not available here."
    if action == "cancel_task":
        return ops.cancel_refusal(state) or "Not available here."
    return "Not available here."


def dimmed_action(node, scope: str, key: str) -> str | None:
    """The action bound to ``key`` in ``scope`` if ``node`` has it dimmed, else None."""
    for spec in specs(scope):
        if spec.key == key and node.check_action(spec.action, ()) is None:
            return spec.action
    return None
