"""One value in full, page by page: written to a file first, then read a page at a time.

A value may be far larger than the screen should hold (100 MB of params). It is streamed
from the database to a file in the console's data directory (never whole in memory),
which is also how it is saved; the screen then shows one ``PAGE_BYTES`` window of that
file at a time.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Header, Label, OptionList, Static
from textual.widgets.option_list import Option

from ...db.previews import human_size
from ...text import plain
from ..actions import bindings
from ..widgets.footer import FittingFooter
from ..widgets.status_bar import StatusBar

PAGE_BYTES = 65_536


def value_path(directory: Path, task_id: uuid.UUID, what: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in what)
    return directory / "values" / f"{task_id}-{safe}.json"


def read_page(path: Path, page: int) -> str:
    """Page ``page`` (from 0) of the file, cut on character boundaries."""
    with path.open("rb") as f:
        f.seek(page * PAGE_BYTES)
        data = f.read(PAGE_BYTES + 3)
    start = 0
    if page:
        # A page starts after any continuation bytes of a character cut by the last one.
        while start < min(3, len(data)) and data[start] & 0xC0 == 0x80:
            start += 1
    end = min(len(data), PAGE_BYTES)
    while end < len(data) and data[end] & 0xC0 == 0x80:
        end += 1
    return data[start:end].decode("utf-8", errors="replace")


class ValueScreen(Screen):
    BINDINGS = bindings("value")

    def __init__(self, queue: str, task_id: uuid.UUID, what: str, label: str, directory: Path):
        super().__init__()
        self.queue = queue
        self.task_id = task_id
        self.what = what
        """Which value: params, headers, result or checkpoint:<name>."""
        self.label = label
        self.path = value_path(directory, task_id, what)
        self.value_size: int | None = None
        self.page = 0

    @property
    def pages(self) -> int:
        if not self.value_size:
            return 1
        return (self.value_size + PAGE_BYTES - 1) // PAGE_BYTES

    def compose(self) -> ComposeResult:
        yield Header(icon="◆")
        yield Static(plain(f"{self.label}: reading …"), id="value-summary", classes="section-title")
        with VerticalScroll(id="value-scroll"):
            yield Static("", id="value-page", classes="json")
        yield StatusBar(self.app.source.label, self.app.monotonic, id="status")
        yield FittingFooter()

    def on_mount(self) -> None:
        self.sub_title = f"task {self.task_id}"
        self.query_one("#value-scroll").focus()
        self._save()

    @work(thread=True, group="value")
    def _save(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            size = self.app.source.save_value(self.queue, self.task_id, self.what, self.path)
        except Exception as exc:
            # Shown on the screen: the value could not be read or written (the task was
            # cleaned up, the disk is full); nothing else depends on it.
            self.app.call_from_thread(self._failed, exc)
            return
        self.app.call_from_thread(self._saved, size)

    def _failed(self, exc: BaseException) -> None:
        self.query_one("#value-summary", Static).update(
            plain(f"{self.label}: could not be read: {exc}")
        )

    def _saved(self, size: int | None) -> None:
        if size is None:
            self._failed(LookupError("the task or value no longer exists"))
            return
        self.value_size = size
        self.show_page(0)

    def show_page(self, page: int) -> None:
        if self.value_size is None:
            return
        self.page = max(0, min(page, self.pages - 1))
        text = read_page(self.path, self.page) if self.value_size else ""
        # The page is user data: shown inert, with control characters as visible escapes.
        self.query_one("#value-page", Static).update(plain(text, single_line=False))
        self.query_one("#value-scroll", VerticalScroll).scroll_home(animate=False)
        self.query_one("#value-summary", Static).update(
            plain(
                f"{self.label}: {human_size(self.value_size)}, page {self.page + 1:,} of "
                f"{self.pages:,} ({human_size(PAGE_BYTES)} each) · saved to {self.path}"
            )
        )
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("next_value_page", "last_value_page"):
            return (self.value_size is not None and self.page < self.pages - 1) or None
        if action in ("prev_value_page", "first_value_page"):
            return (self.value_size is not None and self.page > 0) or None
        return True

    def action_next_value_page(self) -> None:
        self.show_page(self.page + 1)

    def action_prev_value_page(self) -> None:
        self.show_page(self.page - 1)

    def action_first_value_page(self) -> None:
        self.show_page(0)

    def action_last_value_page(self) -> None:
        self.show_page(self.pages - 1)

    def action_close(self) -> None:
        self.dismiss()


class ValuePicker(ModalScreen[str | None]):
    """Which of a task's values to open in full."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, choices: list[tuple[str, str]], initial: str | None = None):
        super().__init__()
        self.choices = choices
        self.initial = initial

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog value-picker"):
            yield Label("Open a whole value", classes="dialog-title")
            yield OptionList(*(Option(plain(label), id=what) for what, label in self.choices))

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        ids = [what for what, _ in self.choices]
        if self.initial in ids:
            options.highlighted = ids.index(self.initial)
        options.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)
