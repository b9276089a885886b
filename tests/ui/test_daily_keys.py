"""The keys and views a daily user leans on, driven like a user (Pilot), on real PostgreSQL."""

from __future__ import annotations

import uuid

import pytest
from support import pilot_wait_until as wait_until
from textual.widgets import Input, Static
from textual.widgets._footer import FooterKey

from absurd_tui.ui.screens.main import MainScreen, TasksTable
from absurd_tui.ui.screens.task_detail import RunDialog, TaskDetailScreen
from absurd_tui.ui.widgets.keyed_table import KeyedTable
from absurd_tui.ui.widgets.status_bar import StatusBar

pytestmark = pytest.mark.anyio

SMALL = (80, 24)


def footer_actions(app) -> list[str]:
    return [key.action for key in app.screen.query(FooterKey)]


def tasks(app) -> TasksTable:
    return app.main_screen.query_one("#tasks", TasksTable)


async def spawned(pilot, app, count: int) -> None:
    await wait_until(pilot, lambda: len(app.main_screen.tasks_view.rows) >= count, "tasks")


async def test_x_then_slash_then_typing_goes_to_the_search_box(make_app, client):
    for n in range(3):
        client.spawn("no-worker-knows", {"n": n}, queue="default")
    app = make_app(workers=0)
    async with app.run_test(size=SMALL) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, MainScreen), "main")
        await spawned(pilot, app, 3)
        await pilot.press("s")
        await pilot.press("x", "slash", "e", "p", "w")
        search = app.main_screen.query_one("#search", Input)
        await wait_until(pilot, lambda: search.value == "epw", "the letters typed in the box")
        # The letters were typed, not run: no Emit dialog, workers not paused.
        assert isinstance(app.screen, MainScreen)
        assert not app.workers_paused
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.focused is tasks(app), "Esc leaves the box")
        assert search.value == "epw"


async def test_x_clears_a_queue_filter_that_the_bar_shows(make_app, client):
    client.create_queue("reports")
    client.spawn("no-worker-knows", {}, queue="reports")
    client.spawn("no-worker-knows", {}, queue="default")
    app = make_app(workers=0)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, MainScreen), "main")
        view = app.main_screen.tasks_view
        await spawned(pilot, app, 2)
        queues = app.main_screen.query_one("#queues", KeyedTable)
        await wait_until(pilot, lambda: queues.select_key("reports"), "the reports queue")
        await wait_until(pilot, lambda: view.flt.queue == "reports", "filtered by queue")
        label = app.main_screen.query_one("#queue-filter", Static)
        assert "queue reports (x clears)" in str(label.render())
        tasks(app).focus()
        await pilot.press("x")
        await wait_until(pilot, lambda: view.flt.queue is None, "the queue filter cleared")
        await wait_until(pilot, lambda: len(view.rows) == 2, "both tasks again")
        assert "all queues" in str(label.render())


async def test_an_empty_table_says_no_tasks_match(make_app, client):
    client.spawn("no-worker-knows", {}, queue="default")
    app = make_app(workers=0)
    async with app.run_test(size=SMALL) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, MainScreen), "main")
        await spawned(pilot, app, 1)
        empty = app.main_screen.query_one("#tasks-empty", Static)
        assert not empty.has_class("-visible")
        await pilot.press("s", "s", "s", "s", "s")  # state: failed
        view = app.main_screen.tasks_view
        await wait_until(pilot, lambda: view.flt.state == "failed", "failed filter")
        await wait_until(pilot, lambda: empty.has_class("-visible"), "the empty note")
        assert "No tasks match all queues, state failed: x clears" in str(empty.render())


async def test_vim_keys_move_the_cursor(make_app, client):
    for n in range(5):
        client.spawn("no-worker-knows", {"n": n}, queue="default")
    app = make_app(workers=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, MainScreen), "main")
        await spawned(pilot, app, 5)
        table = tasks(app)
        table.focus()
        await pilot.press("G")
        assert table.cursor_row == 4
        await pilot.press("k")
        assert table.cursor_row == 3
        await pilot.press("g")
        assert table.cursor_row == 0
        await pilot.press("j", "j")
        assert table.cursor_row == 2
        await pilot.press("end")
        assert table.cursor_row == 4


async def test_the_footer_shows_only_what_applies_and_fits_80_columns(make_app, client):
    failed = client.spawn("flaky", {}, max_attempts=1).task_id
    app = make_app(workers=1)
    async with app.run_test(size=SMALL) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, MainScreen), "main")
        key = f"default/{failed}"
        await wait_until(
            pilot,
            lambda: (row := app.main_screen.tasks_view.rows.get(key)) and row.state == "failed",
            "failed",
        )
        await wait_until(pilot, lambda: tasks(app).select_key(key), "selected")
        await pilot.pause()
        actions = footer_actions(app)
        assert "retry_task" in actions and "select_cursor" in actions
        assert "cancel_task" not in actions
        assert "help" in actions and "quit" in actions
        keys = list(app.screen.query(FooterKey))
        assert max(k.region.right for k in keys) <= 80
        # Every key is on the one footer line.
        assert len({k.region.y for k in keys}) == 1
        bar = str(app.screen.query_one(StatusBar).render())
        assert "connected" in bar and "busy" in bar and len(bar) <= 80


async def test_enter_on_a_run_shows_its_failure_and_durations_are_shown(make_app, client):
    failed = client.spawn("flaky", {}, max_attempts=1).task_id
    app = make_app(workers=1)
    async with app.run_test(size=SMALL) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, MainScreen), "main")
        key = f"default/{failed}"
        await wait_until(
            pilot,
            lambda: (row := app.main_screen.tasks_view.rows.get(key)) and row.state == "failed",
            "failed",
        )
        app.open_task("default", uuid.UUID(str(failed)))
        await wait_until(pilot, lambda: isinstance(app.screen, TaskDetailScreen), "detail")
        detail = app.screen
        await wait_until(
            pilot, lambda: detail.is_mounted and detail.view.detail is not None, "loaded"
        )
        took = str(detail.query_one("#summary-took", Static).render())
        assert took.endswith("s") and "so far" not in took
        detail.query_one("#detail-tabs").active = "runs-tab"
        runs = detail.query_one("#runs", KeyedTable)
        await wait_until(pilot, lambda: len(runs.keys) == 1, "the run")
        runs.focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, RunDialog), "the run dialog")
        text = "\n".join(str(s.render()) for s in app.screen.query(Static))
        assert "flaky failure [bold red]x[/]" in text
        assert "attempt 1" in text
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is detail, "back")


async def test_right_arrow_switches_tabs_from_an_agents_transcript():
    from .demo_app import make_app as make_demo_app
    from .fakes import AGENT_DETAIL

    app = make_demo_app()
    async with app.run_test(size=SMALL) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, MainScreen), "main")
        app.open_task(AGENT_DETAIL.queue, AGENT_DETAIL.task_id, "agent")
        await wait_until(pilot, lambda: isinstance(app.screen, TaskDetailScreen), "detail")
        detail = app.screen
        await wait_until(pilot, lambda: detail.is_mounted and detail.view.detail, "loaded")
        tabs = detail.query_one("#detail-tabs")
        assert tabs.active == "transcript-tab"
        transcript = detail.query_one("#transcript")
        transcript.focus()
        await wait_until(pilot, lambda: app.focused is transcript, "the transcript focused")
        await pilot.press("right")
        await wait_until(pilot, lambda: tabs.active == "overview", "the next tab")
        await pilot.press("left")
        await wait_until(pilot, lambda: tabs.active == "transcript-tab", "back")


async def test_a_queue_no_embedded_worker_serves_says_so(make_app, client):
    client.create_queue("late")
    client.spawn("no-worker-knows", {}, queue="late")
    app = make_app(workers=1)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, MainScreen), "main")
        queues = app.main_screen.query_one("#queues", KeyedTable)

        def name_of(queue: str) -> str:
            return str(queues.get_cell(queue, "queue")) if queue in queues.keys else ""

        await wait_until(pilot, lambda: "no worker here" in name_of("late"), "the warning")
        assert "no worker here" not in name_of("default")


async def test_screenshot_saves_into_the_data_directory_and_says_where(tmp_path):
    from .demo_app import make_app as make_demo_app

    app = make_demo_app()
    app.data_dir = tmp_path / "data"
    async with app.run_test(size=SMALL) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, MainScreen), "main")
        app.action_screenshot()
        saved = list((tmp_path / "data" / "screenshots").glob("*.svg"))
        assert len(saved) == 1
        await wait_until(
            pilot,
            lambda: any(str(saved[0]) in n.message for n in app._notifications),
            "the notice saying where",
        )


async def test_spawning_a_name_no_worker_knows_asks_first(make_app, conn):
    from textual.widgets import TextArea

    from absurd_tui.ui.dialogs import SpawnDialog

    app = make_app(workers=0)
    async with app.run_test(size=SMALL) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, MainScreen), "main")
        await pilot.press("n")
        await wait_until(pilot, lambda: isinstance(app.screen, SpawnDialog), "spawn dialog")
        dialog = app.screen
        dialog.query_one("#task-name", Input).value = "no-such-task"
        dialog.query_one("#params", TextArea).text = "{}"
        await pilot.press("ctrl+s")
        error = dialog.query_one("#dialog-error", Static)
        await wait_until(
            pilot,
            lambda: "No task 'no-such-task' is registered in this console" in str(error.render()),
            "the question",
        )
        assert isinstance(app.screen, SpawnDialog)
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, MainScreen), "spawned anyway")
        await wait_until(
            pilot,
            lambda: (
                conn.execute(
                    "SELECT count(*) FROM absurd.t_default WHERE task_name = 'no-such-task'"
                ).fetchone()[0]
                == 1
            ),
            "the task spawned",
        )


async def test_the_emit_dialog_offers_the_waited_for_events_and_their_queue(make_app, client):
    from absurd_tui.ui.dialogs import EmitDialog

    client.create_queue("orders")
    client.spawn("wait-event", {"event": "order-7.paid"})
    app = make_app(workers=1)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, MainScreen), "main")
        await wait_until(
            pilot,
            lambda: any(r.state == "sleeping" for r in app.main_screen.tasks_view.rows.values()),
            "the task waiting",
        )
        app.main_screen.query_one("#queues", KeyedTable).select_key("orders")
        await wait_until(pilot, lambda: app.main_screen.tasks_view.flt.queue == "orders", "orders")
        tasks(app).focus()
        await pilot.press("e")
        await wait_until(pilot, lambda: isinstance(app.screen, EmitDialog), "emit dialog")
        dialog = app.screen
        hint = str(dialog.query_one("#waited-for", Static).render())
        assert "order-7.paid (default, 1)" in hint
        dialog.query_one("#event-name", Input).value = "order-7.paid"
        await wait_until(
            pilot, lambda: dialog.query_one("#queue", Input).value == "default", "its queue"
        )
        wakes = dialog.query_one("#wakes", Static)
        await wait_until(
            pilot, lambda: "wakes 1 waiting task on default" in str(wakes.render()), "the count"
        )
        dialog.query_one("#event-name", Input).value = "nobody-waits"
        await wait_until(pilot, lambda: "wakes nothing yet" in str(wakes.render()), "nothing")


async def test_o_sorts_the_page_by_column(make_app, client):
    for name in ("beta", "alpha", "gamma"):
        client.spawn(name, {}, queue="default")
    app = make_app(workers=0)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, MainScreen), "main")
        await spawned(pilot, app, 3)
        view = app.main_screen.tasks_view
        table = tasks(app)

        def names() -> list[str]:
            return [view.rows[key].task_name for key in table.keys]

        assert names() == ["gamma", "alpha", "beta"]  # newest first
        table.focus()
        await pilot.press("o")
        await wait_until(pilot, lambda: names() == ["alpha", "beta", "gamma"], "by name")
        matches = str(app.main_screen.query_one("#matches", Static).render())
        assert "sorted by task (o)" in matches
        assert (
            str(table.columns[next(iter(c for c in table.columns if c.value == "name"))].label)
            == "Task ▲"
        )
        for _ in range(5):  # queue, state, attempt, updated, then unsorted
            await pilot.press("o")
        await wait_until(pilot, lambda: view.sort_column is None, "unsorted")
        assert names() == ["gamma", "alpha", "beta"]
