"""The console's dialogs refuse bad input with the same rules and words as the CLI and
the SDK, keep what was typed, and change nothing."""

from __future__ import annotations

import pytest
from support import pilot_wait_until as wait_until
from textual.widgets import Input, Static, TextArea

from absurd_tui.ui.dialogs import SpawnDialog

pytestmark = pytest.mark.anyio

SIZE = (160, 45)


@pytest.mark.parametrize(
    ("params", "max_attempts", "message"),
    [
        ("[1, 2]", "", "params must be a JSON object"),
        ("{}", "2147483648", "max_attempts must be a whole number from 1 to 2,147,483,647"),
    ],
)
async def test_spawn_dialog_refuses_what_the_cli_refuses(
    make_app, conn, params, max_attempts, message
):
    app = make_app(workers=0)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n")
        dialog = await wait_until(
            pilot, lambda: app.screen if isinstance(app.screen, SpawnDialog) else None, "dialog"
        )
        dialog.query_one("#task-name", Input).value = "steps"
        dialog.query_one("#params", TextArea).text = params
        dialog.query_one("#max-attempts", Input).value = max_attempts
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.screen is dialog
        assert message in str(dialog.query_one("#dialog-error", Static).render())
        assert dialog.query_one("#params", TextArea).text == params
    assert conn.execute("SELECT count(*) FROM absurd.t_default").fetchone()[0] == 0


async def test_text_postgres_cannot_store_is_refused_naming_the_field(make_app, conn):
    app = make_app(workers=0)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n")
        dialog = await wait_until(
            pilot, lambda: app.screen if isinstance(app.screen, SpawnDialog) else None, "dialog"
        )
        dialog.query_one("#task-name", Input).value = "steps"
        dialog.query_one("#params", TextArea).text = '{"note": "a\\u0000b"}'
        await pilot.press("ctrl+s")
        await wait_until(
            pilot,
            lambda: any(
                'params["note"] contains a NUL character' in str(n.message)
                for n in app._notifications
            ),
            "the refusal",
        )
    assert conn.execute("SELECT count(*) FROM absurd.t_default").fetchone()[0] == 0
