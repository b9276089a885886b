"""The help screen: every action, its key and what it does, from actions.ACTIONS."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from ..actions import ACTIONS, SCOPE_TITLES, ActionSpec


def key_label(key: str, display: str | None) -> str:
    if display:
        return display
    return {"enter": "Enter", "escape": "Esc", "ctrl+r": "Ctrl+R", "ctrl+p": "Ctrl+P"}.get(key, key)


class HelpScreen(ModalScreen):
    BINDINGS = [
        Binding("escape", "dismiss_help", "Close"),
        Binding("question_mark", "dismiss_help", "Close", key_display="?"),
        Binding("q", "dismiss_help", "Close", show=False),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog help"):
            yield Label("Keys and actions", classes="dialog-title")
            with VerticalScroll(classes="dialog-body"):
                for scope, title in SCOPE_TITLES.items():
                    # One line per key: p pauses and resumes (two actions, one key).
                    first: dict[str, ActionSpec] = {}
                    for spec in ACTIONS:
                        if spec.scope == scope:
                            first.setdefault(spec.key, spec)
                    entries = list(first.values())
                    if scope == "app":
                        extra = [("Ctrl+P", "Command palette: search and run any action.")]
                    elif scope == "workers":
                        extra = [("", "No keys of its own: w changes the thread count, p pauses.")]
                    else:
                        extra = []
                    if not entries and not extra:
                        continue
                    yield Label(title, classes="section-title")
                    text = Text()
                    for spec in entries:
                        text.append(f"{key_label(spec.key, spec.key_display):>8}  ", style="bold")
                        text.append(f"{spec.description}\n")
                    for key, description in extra:
                        text.append(f"{key:>8}  ", style="bold")
                        text.append(f"{description}\n")
                    text.rstrip()
                    yield Static(text, classes="help-keys")
                yield Label("Mouse", classes="section-title")
                yield Static(
                    "Click a tab, a queue or a task; click a selected task to open it; "
                    "click footer keys to run them.",
                    classes="help-keys",
                )

    def action_dismiss_help(self) -> None:
        self.dismiss()
