"""Large values are shown as bounded previews with their size, and can be paged or saved."""

from __future__ import annotations

import json
import uuid

import pytest
from support import pilot_wait_until as wait_until
from textual.widgets import Static

from absurd_tui.db.previews import INLINE_BYTES, Large
from absurd_tui.ui.screens.main import MainScreen
from absurd_tui.ui.screens.task_detail import TaskDetailScreen
from absurd_tui.ui.screens.value import PAGE_BYTES, ValuePicker, ValueScreen

pytestmark = pytest.mark.anyio

SIZE = (120, 40)


def big_params(rows: int) -> dict:
    # Distinct hex strings compress poorly, so the value is stored large (toasted).
    return {"rows": [uuid.UUID(int=n * 7919 + 1).hex * 8 for n in range(rows)], "n": 1}


async def test_a_large_params_task_opens_with_an_outline_and_pages_in_full(
    make_app, client, tmp_path
):
    params = big_params(4_000)  # about 1 MB of JSON
    task_id = uuid.UUID(str(client.spawn("no-worker-knows", params, queue="default")["task_id"]))
    app = make_app(workers=0)
    app.data_dir = tmp_path
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, MainScreen), "main screen")
        app.open_task("default", task_id)
        await wait_until(pilot, lambda: isinstance(app.screen, TaskDetailScreen), "detail")
        detail = app.screen
        await wait_until(
            pilot, lambda: detail.is_mounted and detail.view.detail is not None, "detail loaded"
        )
        assert isinstance(detail.view.detail.params, Large)
        assert detail.view.detail.params.stored > INLINE_BYTES
        shown = detail.query_one("#params", Static)
        await wait_until(pilot, lambda: "an outline" in str(shown.render()), "the outline")
        text = str(shown.render())
        assert "1015.7 KB" in text and "press v" in text
        assert '"n": 1' in text
        assert "array of 4,000 items" in text
        # The screen holds an outline, not the value.
        assert len(text) < 10_000

        await pilot.press("v")
        await wait_until(pilot, lambda: isinstance(app.screen, ValuePicker), "the picker")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ValueScreen), "the value")
        value = app.screen
        await wait_until(pilot, lambda: value.value_size is not None, "the value saved")
        assert value.path.parent == tmp_path / "values"
        assert json.loads(value.path.read_text()) == params
        assert value.pages == (value.value_size + PAGE_BYTES - 1) // PAGE_BYTES > 1
        summary = value.query_one("#value-summary", Static)
        assert f"page 1 of {value.pages}" in str(summary.render())
        assert str(value.path) in str(summary.render()).replace("\n", "")
        await pilot.press("right_square_bracket")
        await wait_until(pilot, lambda: value.page == 1, "page 2")
        page = str(value.query_one("#value-page", Static).render())
        assert page.replace("\n", "") in value.path.read_text().replace("\n", "")
        await pilot.press("G")
        assert value.page == value.pages - 1
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is detail, "back to the task")


async def test_a_small_value_is_shown_whole(make_app, client):
    task_id = uuid.UUID(
        str(client.spawn("no-worker-knows", {"to": "ada"}, queue="default")["task_id"])
    )
    app = make_app(workers=0)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, MainScreen), "main screen")
        app.open_task("default", task_id)
        await wait_until(pilot, lambda: isinstance(app.screen, TaskDetailScreen), "detail")
        detail = app.screen
        await wait_until(
            pilot, lambda: detail.is_mounted and detail.view.detail is not None, "detail loaded"
        )
        assert detail.view.detail.params == {"to": "ada"}
        text = str(detail.query_one("#params", Static).render())
        assert '"to": "ada"' in text
        assert "press v" not in text
        assert "(not finished yet)" in str(detail.query_one("#outcome", Static).render())
