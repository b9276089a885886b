"""A DataTable updated in place from snapshots, keyed by id.

A live view replaces its rows every second. Clearing and re-adding them would jump the
cursor and the scroll position; instead ``apply`` removes rows that left, updates only
the cells that changed, adds new rows, restores the snapshot's order, and puts the
cursor back on the row (by key) it was on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.cells import cell_len
from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey


class KeyedTable(DataTable):
    """DataTable with ``apply(rows)``: rows are (key, cells) in display order."""

    DEFAULT_CSS = """
    KeyedTable { height: 1fr; }
    """

    # vim's keys, and Home/End to the first and last row (DataTable's own Home/End
    # scroll sideways, which a row table rarely needs).
    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("g,home", "scroll_top", "First row", show=False),
        Binding("G,end", "scroll_bottom", "Last row", show=False),
    ]

    def __init__(self, columns: Sequence[tuple[str, str]], **kwargs: Any):
        kwargs.setdefault("cursor_type", "row")
        kwargs.setdefault("zebra_stripes", True)
        super().__init__(**kwargs)
        self._column_spec = columns
        self._cells: dict[str, tuple[Any, ...]] = {}
        self._order: list[str] = []

    def on_mount(self) -> None:
        for key, label in self._column_spec:
            self.add_column(label, key=key)

    @property
    def keys(self) -> list[str]:
        return list(self._order)

    @property
    def cursor_key(self) -> str | None:
        if not self._order or self.cursor_row < 0:
            return None
        try:
            return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except Exception:
            return None

    def apply(self, rows: Sequence[tuple[str, Sequence[Any]]]) -> None:
        """Make the table show ``rows`` (in this order), changing as little as possible."""
        selected = self.cursor_key
        selected_index = self.cursor_row
        wanted = {key: tuple(cells) for key, cells in rows}
        order = [key for key, _ in rows]
        column_keys = [key for key, _ in self._column_spec]
        for key in [k for k in self._order if k not in wanted]:
            self.remove_row(key)
            del self._cells[key]
        for key, cells in wanted.items():
            old = self._cells.get(key)
            if old is cells:
                continue
            if old is None:
                self.add_row(*cells, key=key)
            else:
                for column, before, after in zip(column_keys, old, cells, strict=False):
                    if differs(before, after):
                        self.update_cell(
                            key, column, after, update_width=self._widens(column, after)
                        )
            self._cells[key] = cells
        current = [row.key.value for row in self.ordered_rows]
        if current != order:
            self._reorder(order)
        self._order = order
        if not order:
            return
        if selected is not None and selected in wanted:
            target = order.index(selected)
        else:
            target = min(max(selected_index, 0), len(order) - 1)
        if target != self.cursor_row:
            self.move_cursor(row=target, scroll=False)

    def _widens(self, column: str, cell: Any) -> bool:
        # Asking DataTable to fit a cell that got narrower makes it measure every cell
        # of the column: an age ticking from "10s" to "9s" on 100 rows cost a quarter
        # of the console's idle CPU. Columns grow to fit; they do not shrink in place.
        width = cell.cell_len if isinstance(cell, Text) else cell_len(str(cell))
        current = self.columns.get(ColumnKey(column))
        return current is None or width > current.content_width

    def _reorder(self, order: Sequence[str]) -> None:
        # DataTable.sort orders only by cell values, and the snapshot's order is by an id
        # that is not a column: rebuild the rows in that order (public API only), which
        # happens only when rows came or went, and keep the reader's scroll position.
        scroll_x, scroll_y = self.scroll_x, self.scroll_y
        self.clear()
        for key in order:
            self.add_row(*self._cells[key], key=key)
        self.scroll_to(scroll_x, scroll_y, animate=False, immediate=True)

    def select_key(self, key: str) -> bool:
        if key not in self._cells:
            return False
        self.move_cursor(row=self._order.index(key))
        return True


def differs(a: Any, b: Any) -> bool:
    if a is b:
        return False
    if isinstance(a, Text) and isinstance(b, Text):
        return a.plain != b.plain or a.style != b.style or a.spans != b.spans
    return a != b
