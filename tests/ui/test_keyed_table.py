"""KeyedTable: live updates keep the order of the snapshot and the reader's selection."""

from __future__ import annotations

import pytest
from textual.app import App, ComposeResult

from absurd_tui.ui.widgets.keyed_table import KeyedTable

pytestmark = pytest.mark.anyio

COLUMNS = (("name", "Name"), ("state", "State"))


class TableApp(App[None]):
    def compose(self) -> ComposeResult:
        yield KeyedTable(COLUMNS)


def order(table: KeyedTable) -> list[str]:
    return [str(row.key.value) for row in table.ordered_rows]


async def test_rows_follow_the_snapshot_order_and_the_cursor_stays_on_its_row():
    app = TableApp()
    async with app.run_test() as pilot:
        table = app.query_one(KeyedTable)
        table.apply([("a", ("alpha", "pending")), ("b", ("beta", "running"))])
        await pilot.pause()
        table.select_key("b")
        # A new row arrives at the top and one leaves: the order is the snapshot's, the
        # cursor stays on "b" although its index changed, and cells are current.
        table.apply([("c", ("gamma", "pending")), ("b", ("beta", "completed"))])
        await pilot.pause()
        assert order(table) == ["c", "b"]
        assert table.keys == ["c", "b"]
        assert table.cursor_row == 1
        assert table.get_row("b") == ["beta", "completed"]
        # Only a cell changes: nothing moves.
        table.apply([("c", ("gamma", "running")), ("b", ("beta", "completed"))])
        await pilot.pause()
        assert order(table) == ["c", "b"] and table.cursor_row == 1
        assert table.get_row("c") == ["gamma", "running"]
