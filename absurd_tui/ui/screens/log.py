"""The log panel: what the console's threads logged, newest at the bottom.

The records come from the app's ``Logbook`` (logging is routed there while the console
runs, never to the terminal). The panel shows what was kept when it opened and appends
new records as they arrive; opening it marks the warnings as seen, which clears the
notice in the status bar.
"""

from __future__ import annotations

import logging

from rich.text import Text
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Header, RichLog, Static

from ...text import plain
from ..actions import bindings
from ..logbook import KEEP, Entry
from ..widgets.footer import FittingFooter
from ..widgets.status_bar import StatusBar


def entry_text(entry: Entry, colours: dict[str, str]) -> Text:
    style = ""
    if entry.level >= logging.ERROR:
        style = colours.get("error", "")
    elif entry.level >= logging.WARNING:
        style = colours.get("warning", "")
    # Plain text: a logged message is user data as far as the screen is concerned.
    return plain(entry.text, style, single_line=False)


class LogScreen(Screen):
    BINDINGS = bindings("log")

    def __init__(self) -> None:
        super().__init__()
        self.shown = 0

    def compose(self) -> ComposeResult:
        yield Header(icon="◆")
        yield Static("", id="log-summary", classes="section-title")
        yield RichLog(id="log", markup=False, highlight=False, wrap=True, max_lines=KEEP)
        yield StatusBar(self.app.source.label, self.app.monotonic, id="status")
        yield FittingFooter()

    def on_mount(self) -> None:
        self.sub_title = "log"
        self.query_one("#log", RichLog).focus()
        self.append_new()

    def on_screen_resume(self) -> None:
        self.append_new()

    def append_new(self) -> None:
        logbook = self.app.logbook
        log = self.query_one("#log", RichLog)
        colours = self.app.colours
        for entry in logbook.entries(after=self.shown):
            log.write(entry_text(entry, colours))
            self.shown = entry.seq
        count = logbook.last_seq
        dropped = logbook.dropped
        summary = f"{count:,} record{'' if count == 1 else 's'} logged"
        if dropped:
            summary += f" ({dropped:,} oldest no longer kept)"
        if count == 0:
            summary = "Nothing logged yet (warnings and errors; start with -v for more)"
        self.query_one("#log-summary", Static).update(Text(summary))
        self.app.mark_log_seen()

    def action_close(self) -> None:
        self.dismiss()
