"""The footer: the keys that apply now, as many as fit on one line.

Textual's footer shows every binding, dimmed ones included, in a grid with one column
per key: at 80 columns the labels run into each other. This one leaves out actions that
do not apply now (they stay listed, dimmed, in the help and the palette), keeps the keys
of the focused view before the app-wide ones, and stops when the line is full, keeping
Help and Quit (and the palette key) at its end so everything else stays reachable.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

ALWAYS = ("help", "quit")
"""Actions kept at the end of the line whatever else is left out."""
KEY_PADDING = 2
"""Columns a compact footer key takes besides its key and label."""


class FittingFooter(Footer):
    def __init__(self, **kwargs: Any):
        kwargs.setdefault("compact", True)
        super().__init__(**kwargs)

    def on_resize(self) -> None:
        self.refresh(recompose=True)

    def _keys(self) -> list[tuple[Binding, str]]:
        shown: dict[str, tuple[Binding, str]] = {}
        for _node, binding, enabled, tooltip in self.screen.active_bindings.values():
            if not binding.show or not enabled or binding.action in shown:
                continue
            shown[binding.action] = (binding, tooltip)
        return list(shown.values())

    def _fitting(self) -> Iterator[tuple[Binding, str]]:
        keys = self._keys()
        tail = [k for k in keys if k[0].action in ALWAYS]
        head = [k for k in keys if k[0].action not in ALWAYS]
        width = self.size.width or self.app.size.width
        palette = 0
        if self.show_command_palette and self.app.ENABLE_COMMAND_PALETTE:
            palette = len(self.app.get_key_display(Binding("ctrl+p", ""))) + 10
        budget = width - palette - sum(self._width(b) for b, _ in tail)
        for binding, tooltip in head:
            cost = self._width(binding)
            if cost > budget:
                break
            budget -= cost
            yield binding, tooltip
        yield from tail

    def _width(self, binding: Binding) -> int:
        return len(self.app.get_key_display(binding)) + len(binding.description) + KEY_PADDING

    def compose(self) -> ComposeResult:
        if not self._bindings_ready:
            return
        fitting = list(self._fitting())
        self.styles.grid_size_columns = len(fitting) + 1
        for binding, tooltip in fitting:
            yield FooterKey(
                binding.key,
                self.app.get_key_display(binding),
                binding.description,
                binding.action,
                tooltip=tooltip,
            ).data_bind(compact=Footer.compact)
        if self.show_command_palette and self.app.ENABLE_COMMAND_PALETTE:
            found = self.screen.active_bindings.get(self.app.COMMAND_PALETTE_BINDING)
            if found is not None:
                _node, binding, enabled, tooltip = found
                yield FooterKey(
                    binding.key,
                    self.app.get_key_display(binding),
                    binding.description,
                    binding.action,
                    classes="-command-palette",
                    disabled=not enabled,
                    tooltip=binding.tooltip or binding.description,
                )
