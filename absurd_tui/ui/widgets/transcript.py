"""An agent's conversation as a scrolling log, updated in place from transcript snapshots.

Each entry of ``agent.Transcript`` is one block (who speaks, then what), keyed by the
entry's stable key. ``show`` adds the entries that are new, re-renders those that
changed, and drops the transient one (work in progress, a wait) once the next snapshot
replaces it, so the log never flickers or loses its place. Once the log is taller than
its view it is anchored to its end: it follows new entries while the user is at the
bottom, and stays put when they have scrolled up to read (scrolling back to the bottom
follows again).

Everything the model, the tools or the user wrote is shown through ``plain``: never
markup, never escape sequences.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime

from rich.text import Text
from textual.widgets import Static

from ...agent import Entry
from ...agent.tools import EXECUTE_PYTHON
from ...text import json_block, plain, until
from .previews import describe
from .tab_scroll import TabScroll

# The theme variable that colours each kind of entry's heading (see app.tcss for the
# left rule in the same colour).
HEADING_COLOURS = {
    "prompt": "accent",
    "assistant": "primary",
    "tool_call": "secondary",
    "tool_result": "secondary",
    "waiting_human": "warning",
    "sleeping": "foreground-muted",
    "running": "warning",
    "final": "success",
    "stopped": "warning",
    "failed": "error",
    "cancelled": "foreground-muted",
    "error": "error",
}


def heading(entry: Entry) -> str:
    turn = f" · turn {entry.iteration}" if entry.iteration else ""
    kind = entry.kind
    if kind == "prompt":
        return "You"
    if kind == "assistant":
        return f"Assistant{turn}"
    if kind == "tool_call":
        return f"Tool call: {entry.tool_name}{turn}"
    if kind == "tool_result":
        return f"{'Tool error' if entry.is_error else 'Tool result'}: {entry.tool_name}"
    if kind == "waiting_human":
        return "The agent asks you"
    if kind == "sleeping":
        return "Sleeping"
    if kind == "running":
        return "Working"
    if kind == "final":
        return "Final answer"
    return {"stopped": "Stopped", "failed": "Failed", "cancelled": "Cancelled"}.get(kind, "Error")


def render_entry(
    entry: Entry,
    now: datetime,
    colours: Mapping[str, str],
    previews: Mapping[str, Text] | None = None,
) -> Text:
    colour = colours.get(HEADING_COLOURS.get(entry.kind, "foreground"), "")
    if entry.kind == "tool_result" and entry.is_error:
        colour = colours.get("error", "")
    marker = "● " if entry.transient else ""
    text = Text.assemble(plain(marker + heading(entry), f"bold {colour}".strip()), "\n")
    if entry.kind == "tool_call":
        code = entry.tool_input.get("code") if isinstance(entry.tool_input, dict) else None
        if entry.tool_name == EXECUTE_PYTHON and isinstance(code, str):
            # Code reads as code, not as a JSON string full of \n.
            text.append_text(plain(code, single_line=False))
        else:
            text.append_text(_tool_input(entry.tool_input))
        return text
    text.append_text(plain(entry.text or "(empty)", single_line=False))
    for artifact in entry.files:
        # Each file the code left in /output: what it is, then what it looks like.
        text.append("\n\n")
        text.append_text(
            plain("File " + describe(artifact), f"bold {colours.get('accent', '')}".strip())
        )
        shown = (previews or {}).get(artifact.sha256)
        if shown is not None:
            text.append("\n")
            text.append_text(shown)
    if entry.kind == "waiting_human":
        note = "Press A to answer."
        if entry.until is not None:
            note += f" It stops waiting {until(entry.until, now)}."
        text.append_text(Text("\n" + note, style=f"bold {colours.get('warning', '')}".strip()))
    elif entry.kind == "sleeping" and entry.until is not None:
        text.append_text(
            Text(f" (wakes {until(entry.until, now)})", style=colours.get("foreground-muted", ""))
        )
    return text


COMPACT_INPUT = 100
"""Tool input up to this many characters of JSON is shown on one line, longer pretty."""


def _tool_input(value) -> Text:
    if value in (None, {}):
        return Text("(no input)")
    try:
        compact = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return plain(repr(value), single_line=False)
    if len(compact) <= COMPACT_INPUT:
        return plain(compact)
    return json_block(value)


class EntryView(Static):
    def __init__(self, entry: Entry, content: Text, previewed: frozenset[str] = frozenset()):
        super().__init__(content, classes=f"entry entry-{entry.kind}")
        self.entry = entry
        self.previewed = previewed
        """The files whose previews this view shows (a preview arriving later redraws it)."""

    def show(self, entry: Entry, content: Text, previewed: frozenset[str] = frozenset()) -> None:
        if entry.kind != self.entry.kind:
            self.remove_class(f"entry-{self.entry.kind}")
            self.add_class(f"entry-{entry.kind}")
        self.entry = entry
        self.previewed = previewed
        self.update(content)


class TranscriptLog(TabScroll):
    """The entries of a transcript, oldest first."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._views: dict[str, EntryView] = {}
        self._order: list[str] = []

    @property
    def keys(self) -> list[str]:
        return list(self._order)

    def entry_view(self, key: str) -> EntryView | None:
        return self._views.get(key)

    def show(
        self,
        entries: Sequence[Entry],
        now: datetime,
        colours: Mapping[str, str],
        previews: Mapping[str, Text] | None = None,
    ) -> None:
        """``previews`` are the artifacts' previews by content hash (``previews.py``)."""
        previews = previews or {}
        wanted = [entry.key for entry in entries]
        present = set(wanted)
        for key in [k for k in self._order if k not in present]:
            self._views.pop(key).remove()
        kept = [k for k in self._order if k in present]
        if wanted[: len(kept)] != kept:
            # Entries only ever get appended (the transient last one aside); if that
            # ever does not hold, start over rather than show them out of order.
            for view in self._views.values():
                view.remove()
            self._views.clear()
            kept = []
        added: list[EntryView] = []
        for entry in entries:
            view = self._views.get(entry.key)
            previewed = frozenset(f.sha256 for f in entry.files if f.sha256 in previews)
            if view is None:
                view = EntryView(entry, render_entry(entry, now, colours, previews), previewed)
                self._views[entry.key] = view
                added.append(view)
            elif entry != view.entry or entry.transient or previewed != view.previewed:
                # Transient entries show times relative to now: re-render them each time.
                view.show(entry, render_entry(entry, now, colours, previews), previewed)
        self._order = wanted
        if added:
            self.mount_all(added)
        if not self.is_anchored:
            # Checked on every snapshot: new entries may not be laid out yet after one
            # refresh, and the view can shrink (a smaller terminal) without new entries.
            self.call_after_refresh(self._follow_when_overflowing)

    def watch_virtual_size(self) -> None:
        # The entries' layout can land after the refresh that show() waited for: check
        # again whenever the content's size changes.
        self.call_after_refresh(self._follow_when_overflowing)

    def _follow_when_overflowing(self) -> None:
        # Anchored while shorter than the view, the log would sit at the bottom of an
        # empty pane (chat style); it reads better from the top until it fills the view.
        if not self.is_anchored and self.max_scroll_y > 0:
            self.anchor()
