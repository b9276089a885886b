"""How the console looks at 80x24, the smallest terminal it supports, and its new views.

The same fixed data, frozen clock and pinned theme as test_snapshots.py. Review
snapshot_report.html before running with --snapshot-update.
"""

from __future__ import annotations

import logging

from textual.widgets import TextArea

from absurd_tui.ui.dialogs import EmitDialog, RetryDialog, SpawnDialog
from absurd_tui.ui.logbook import Logbook
from absurd_tui.ui.screens.help import HelpScreen
from absurd_tui.ui.screens.log import LogScreen
from absurd_tui.ui.screens.task_detail import RunDialog

from .demo_app import make_app
from .test_snapshots import loaded, open_agent, open_screen, select_task, until

SMALL = (80, 24)
LARGE = (160, 45)


async def open_detail(pilot, n: int = 36) -> None:
    from absurd_tui.ui.screens.task_detail import TaskDetailScreen

    await select_task(pilot, n)
    await pilot.press("enter")
    app = pilot.app
    await until(
        pilot,
        lambda: (
            isinstance(app.screen, TaskDetailScreen)
            and app.screen.is_mounted
            and app.screen.view.detail is not None
        ),
        "detail data",
    )


def test_main_screen_80x24(snap_compare):
    assert snap_compare(make_app(), terminal_size=SMALL, run_before=loaded)


def test_task_detail_80x24(snap_compare):
    assert snap_compare(make_app(), terminal_size=SMALL, run_before=open_detail)


def test_agent_transcript_80x24(snap_compare):
    async def run(pilot):
        await open_agent(pilot)
        # At 80x24 the transcript overflows: it follows its end (the question) once laid out.
        log = pilot.app.screen.query_one("#transcript")
        await until(
            pilot, lambda: log.max_scroll_y > 0 and log.scroll_y == log.max_scroll_y, "its end"
        )

    assert snap_compare(make_app(), terminal_size=SMALL, run_before=run)


def test_spawn_dialog_80x24(snap_compare):
    async def run(pilot):
        await open_screen(pilot, ["n"], SpawnDialog)
        await pilot.press(*"charge-card")
        pilot.app.screen.query_one("#params", TextArea).text = '{"order": 42}'

    assert snap_compare(make_app(), terminal_size=SMALL, run_before=run)


def test_emit_dialog_80x24(snap_compare):
    async def run(pilot):
        await open_screen(pilot, ["e"], EmitDialog)

    assert snap_compare(make_app(), terminal_size=SMALL, run_before=run)


def test_retry_dialog_80x24(snap_compare):
    async def run(pilot):
        await select_task(pilot, 36)
        await pilot.press("r")
        await until(pilot, lambda: isinstance(pilot.app.screen, RetryDialog), "retry dialog")

    assert snap_compare(make_app(), terminal_size=SMALL, run_before=run)


def test_help_screen_80x24(snap_compare):
    async def run(pilot):
        await open_screen(pilot, ["question_mark"], HelpScreen)

    assert snap_compare(make_app(), terminal_size=SMALL, run_before=run)


def _logged_app():
    logbook = Logbook(formatter=logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    for level, text in (
        (logging.WARNING, "worker 1 lost its connection; reconnecting"),
        (logging.ERROR, "task charge-card 5af0065b failed: card declined"),
    ):
        logbook.handle(
            logging.makeLogRecord(
                {
                    "levelno": level,
                    "levelname": logging.getLevelName(level),
                    "name": "absurd_tui.runtime",
                    "msg": text,
                }
            )
        )
    return make_app(logbook=logbook)


def test_warning_notice_in_the_status_bar(snap_compare):
    assert snap_compare(_logged_app(), terminal_size=LARGE, run_before=loaded)


def test_log_panel(snap_compare):
    async def run(pilot):
        await open_screen(pilot, ["l"], LogScreen)

    assert snap_compare(_logged_app(), terminal_size=LARGE, run_before=run)


def test_run_dialog(snap_compare):
    async def run(pilot):
        await open_detail(pilot, 36)
        screen = pilot.app.screen
        screen.query_one("#detail-tabs").active = "runs-tab"
        await pilot.pause()
        screen.query_one("#runs").focus()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(pilot.app.screen, RunDialog), "run dialog")

    assert snap_compare(make_app(), terminal_size=LARGE, run_before=run)
