"""A vertical scroll inside a tab whose left and right keys switch tabs.

A VerticalScroll binds left and right to scroll sideways, which text that wraps never
needs; focused in a tab (a detail's overview, an agent's transcript) it would swallow the
keys that switch tabs everywhere else.
"""

from __future__ import annotations

from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import TabbedContent, Tabs


class TabScroll(VerticalScroll):
    BINDINGS = [
        Binding("left", "switch_tab(-1)", "Previous tab", show=False),
        Binding("right", "switch_tab(1)", "Next tab", show=False),
    ]

    def action_switch_tab(self, step: int) -> None:
        tabs = next((a for a in self.ancestors if isinstance(a, TabbedContent)), None)
        if tabs is None:
            return
        bar = tabs.query_one(Tabs)
        if step > 0:
            bar.action_next_tab()
        else:
            bar.action_previous_tab()
        # This scroll is now hidden and would leave nothing focused: the tab bar takes
        # the focus, and its own left and right carry on switching.
        bar.focus()
