"""How the console looks: SVG snapshots (pytest-textual-snapshot) with fixed data.

Deterministic by construction: the fake data source of fakes.py (fixed ids and
times), a frozen clock, the pinned textual-dark theme, a 160x45 terminal, no NOTIFY
listener, no cursor blink, and every screenshot taken only once the data it shows has
been applied. Review snapshot_report.html before running with --snapshot-update.
"""

from __future__ import annotations

import pytest
from support import pilot_wait_until
from textual.widgets import Input, TextArea

from absurd_tui.ui.dialogs import (
    AgentDialog,
    AnswerDialog,
    ConfirmDialog,
    EmitDialog,
    RetryDialog,
    SpawnDialog,
    WorkersDialog,
)
from absurd_tui.ui.screens.help import HelpScreen
from absurd_tui.ui.screens.main import MainScreen
from absurd_tui.ui.screens.task_detail import TaskDetailScreen

from .demo_app import make_app
from .fakes import tid

SIZE = (160, 45)


@pytest.fixture(autouse=True)
def no_api_key(monkeypatch):
    # The model picker shows Claude as unavailable without a key: pin that.
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)


async def until(pilot, condition, what: str, timeout: float = 10.0):
    """Wait for ``condition``, then let the screen settle before it is photographed."""
    await pilot_wait_until(pilot, condition, what, timeout)
    await pilot.pause()


def no_blink(app) -> None:
    for widget in app.screen.query("Input, TextArea"):
        widget.cursor_blink = False


async def loaded(pilot) -> None:
    app = pilot.app
    await until(
        pilot, lambda: isinstance(app.screen, MainScreen) and app.screen.tasks_view.loaded, "tasks"
    )


async def open_screen(pilot, keys, screen_type) -> None:
    await loaded(pilot)
    await pilot.press(*keys)
    await until(pilot, lambda: isinstance(pilot.app.screen, screen_type), screen_type.__name__)
    no_blink(pilot.app)


async def select_task(pilot, n: int) -> None:
    await loaded(pilot)
    table = pilot.app.main_screen.query_one("#tasks")
    key = next(k for k in table.keys if k.endswith(str(tid(n))))
    table.select_key(key)
    await pilot.pause()


def test_main_screen(snap_compare):
    assert snap_compare(make_app(), terminal_size=SIZE, run_before=loaded)


def test_main_screen_filtered_by_state(snap_compare):
    async def run(pilot):
        await loaded(pilot)
        await pilot.press("s", "s", "s")
        await until(
            pilot, lambda: pilot.app.main_screen.tasks_view.flt.state == "sleeping", "filter"
        )
        await until(pilot, lambda: not pilot.app.main_screen.tasks_view.in_flight, "refresh")

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=run)


def test_task_detail(snap_compare):
    async def run(pilot):
        await select_task(pilot, 36)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(pilot.app.screen, TaskDetailScreen), "detail")
        await until(pilot, lambda: pilot.app.screen.view.detail is not None, "detail data")

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=run)


def test_task_detail_checkpoints(snap_compare):
    async def run(pilot):
        await select_task(pilot, 36)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(pilot.app.screen, TaskDetailScreen), "detail")
        await until(pilot, lambda: pilot.app.screen.view.detail is not None, "detail data")
        pilot.app.screen.query_one("#detail-tabs").active = "checkpoints-tab"
        await pilot.pause()
        pilot.app.screen.query_one("#checkpoints").focus()
        await pilot.press("down")

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=run)


async def open_agent(pilot) -> None:
    await select_task(pilot, 39)
    await pilot.press("enter")
    app = pilot.app
    await until(
        pilot,
        lambda: (
            isinstance(app.screen, TaskDetailScreen)
            and app.screen.is_mounted
            and app.screen.view.transcript
        ),
        "transcript",
    )


def test_agent_transcript_waiting_for_an_answer(snap_compare):
    assert snap_compare(make_app(), terminal_size=SIZE, run_before=open_agent)


def test_answer_dialog(snap_compare):
    async def run(pilot):
        await open_agent(pilot)
        await pilot.press("A")
        await until(pilot, lambda: isinstance(pilot.app.screen, AnswerDialog), "answer dialog")
        no_blink(pilot.app)
        await pilot.press(*"Lyon")

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=run)


def test_new_agent_dialog(snap_compare):
    async def run(pilot):
        await open_screen(pilot, ["a"], AgentDialog)
        pilot.app.screen.query_one(
            "#prompt", TextArea
        ).text = "Plan a day trip for tomorrow:\ncheck the time, ask me which city, then look at its weather."
        pilot.app.screen.query_one("#max-iterations", Input).value = "8"

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=run)


def test_events(snap_compare):
    async def run(pilot):
        await loaded(pilot)
        await pilot.press("2")
        await until(pilot, lambda: pilot.app.main_screen.events_view.loaded, "events")

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=run)


def test_workers(snap_compare):
    async def run(pilot):
        await loaded(pilot)
        await pilot.press("3")
        await until(pilot, lambda: pilot.app.main_screen.workers_view.loaded, "workers")

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=run)


def test_spawn_dialog(snap_compare):
    async def run(pilot):
        await open_screen(pilot, ["n"], SpawnDialog)
        await pilot.press(*"charge-card")
        pilot.app.screen.query_one("#params", TextArea).text = '{"order": 42,\n "amount": 1999}'

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=run)


def test_spawn_dialog_with_invalid_json(snap_compare):
    async def run(pilot):
        await open_screen(pilot, ["n"], SpawnDialog)
        await pilot.press(*"charge-card")
        pilot.app.screen.query_one("#params", TextArea).text = '{"order": 42,\n "amount": }'
        await pilot.press("ctrl+s")

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=run)


def test_emit_dialog_from_a_wait(snap_compare):
    async def run(pilot):
        await loaded(pilot)
        await pilot.press("2")
        await until(pilot, lambda: pilot.app.main_screen.events_view.loaded, "events")
        await pilot.press("e")
        await until(pilot, lambda: isinstance(pilot.app.screen, EmitDialog), "emit dialog")
        no_blink(pilot.app)
        pilot.app.screen.query_one("#payload", TextArea).text = '{"approved": true}'

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=run)


def test_retry_dialog(snap_compare):
    async def run(pilot):
        await select_task(pilot, 36)
        await pilot.press("r")
        await until(pilot, lambda: isinstance(pilot.app.screen, RetryDialog), "retry dialog")
        no_blink(pilot.app)

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=run)


def test_cancel_confirmation(snap_compare):
    async def run(pilot):
        await select_task(pilot, 35)
        await pilot.press("c")
        await until(pilot, lambda: isinstance(pilot.app.screen, ConfirmDialog), "confirmation")

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=run)


def test_bulk_cancel_confirmation(snap_compare):
    async def run(pilot):
        await loaded(pilot)
        await pilot.press("C")
        await until(pilot, lambda: isinstance(pilot.app.screen, ConfirmDialog), "confirmation")

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=run)


def test_workers_dialog(snap_compare):
    async def run(pilot):
        await open_screen(pilot, ["w"], WorkersDialog)

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=run)


def test_help_screen(snap_compare):
    async def run(pilot):
        await open_screen(pilot, ["question_mark"], HelpScreen)

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=run)


def test_read_error_state(snap_compare):
    async def run(pilot):
        app = pilot.app
        await until(
            pilot, lambda: app.main_screen.query_one("#tasks-error").has_class("-visible"), "error"
        )

    assert snap_compare(make_app(broken=True), terminal_size=SIZE, run_before=run)


def test_disconnected_state(snap_compare):
    """Data read before the outage stays on screen; the status bar says what is going on."""

    async def run(pilot):
        app = pilot.app
        await loaded(pilot)
        app.source.down = True
        app.tick()
        await until(pilot, lambda: not app.connection.connected, "disconnected")

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=run)
