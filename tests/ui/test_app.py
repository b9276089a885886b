"""The console driven like a user (Pilot), on real PostgreSQL with real embedded workers."""

from __future__ import annotations

import uuid

import pytest
from support import pilot_wait_until
from textual.widgets import Input, Static, TextArea

from absurd_tui.ui.dialogs import (
    ConfirmDialog,
    EmitDialog,
    RetryDialog,
    SpawnDialog,
    WorkersDialog,
)
from absurd_tui.ui.screens.help import HelpScreen
from absurd_tui.ui.screens.main import MainScreen, TasksTable
from absurd_tui.ui.screens.task_detail import TaskDetailScreen
from absurd_tui.ui.widgets.keyed_table import KeyedTable

from .conftest import task_state

pytestmark = pytest.mark.anyio

SIZE = (160, 45)


def tasks_table(app) -> TasksTable:
    return app.main_screen.query_one("#tasks", TasksTable)


def row_state(app, task_id, queue="default") -> str | None:
    row = app.main_screen.tasks_view.rows.get(f"{queue}/{task_id}")
    return row.state if row else None


def shows(app, task_id, state) -> bool:
    return row_state(app, task_id) == state


async def select(pilot, app, task_id, queue="default") -> None:
    await pilot_wait_until(
        pilot, lambda: tasks_table(app).select_key(f"{queue}/{task_id}"), f"row {task_id}"
    )
    await pilot.pause()


async def test_spawn_from_dialog_runs_to_completion_and_shows_checkpoints(make_app, conn):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n")
        await pilot_wait_until(pilot, lambda: isinstance(app.screen, SpawnDialog), "spawn dialog")
        dialog = app.screen
        dialog.query_one("#task-name", Input).value = "steps"
        dialog.query_one("#params", TextArea).text = '{"n": 3}'
        await pilot.press("ctrl+s")
        await pilot_wait_until(pilot, lambda: isinstance(app.screen, MainScreen), "dialog closed")
        key = await pilot_wait_until(
            pilot, lambda: next(iter(app.main_screen.tasks_view.rows), None), "task row"
        )
        task_id = uuid.UUID(key.split("/", 1)[1])
        await pilot_wait_until(
            pilot, lambda: shows(app, task_id, "completed"), "completed in the table"
        )
        assert task_state(conn, task_id) == "completed"
        await select(pilot, app, task_id)
        await pilot.press("enter")
        await pilot_wait_until(
            pilot, lambda: isinstance(app.screen, TaskDetailScreen), "detail screen"
        )
        detail = app.screen
        await pilot_wait_until(pilot, lambda: detail.view.detail is not None, "detail loaded")
        assert [c.name for c in detail.view.detail.checkpoints] == [
            "iteration",
            "iteration#2",
            "iteration#3",
        ]
        checkpoints = detail.query_one("#checkpoints", KeyedTable)
        assert checkpoints.keys == ["iteration", "iteration#2", "iteration#3"]
        assert detail.view.detail.result == {"total": 3}
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)


async def test_spawn_dialog_shows_json_error_position_and_keeps_input(make_app, conn):
    app = make_app(workers=0)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n")
        await pilot_wait_until(pilot, lambda: isinstance(app.screen, SpawnDialog), "spawn dialog")
        dialog = app.screen
        dialog.query_one("#task-name", Input).value = "steps"
        dialog.query_one("#params", TextArea).text = '{"n": 3,}'
        await pilot.pause()
        status = dialog.query_one("#params-status", Static)
        assert "line 1, column 9" in str(status.render())
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.screen is dialog
        assert "not valid JSON" in str(dialog.query_one("#dialog-error", Static).render())
        assert dialog.query_one("#params", TextArea).text == '{"n": 3,}'
        assert conn.execute("SELECT count(*) FROM absurd.t_default").fetchone()[0] == 0


async def test_emit_from_a_wait_wakes_the_task(make_app, client, conn):
    task_id = client.spawn("wait-event", {"event": "order-1.paid"}).task_id
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot_wait_until(pilot, lambda: shows(app, task_id, "sleeping"), "task waiting")
        await pilot.press("2")
        events = app.main_screen.events_view
        await pilot_wait_until(pilot, lambda: events.selected_wait is not None, "wait listed")
        assert events.selected_wait.event_name == "order-1.paid"
        await pilot.press("e")
        await pilot_wait_until(pilot, lambda: isinstance(app.screen, EmitDialog), "emit dialog")
        dialog = app.screen
        assert dialog.query_one("#event-name", Input).value == "order-1.paid"
        dialog.query_one("#payload", TextArea).text = '{"amount": 12}'
        await pilot.press("ctrl+s")
        await pilot_wait_until(
            pilot, lambda: task_state(conn, task_id) == "completed", "task completed"
        )
        assert client.fetch_task_result(task_id).result == {"got": {"amount": 12}}
        await pilot_wait_until(
            pilot, lambda: events.query_one("#waits", KeyedTable).row_count == 0, "wait gone"
        )
        await pilot_wait_until(
            pilot,
            lambda: "default/order-1.paid" in events.query_one("#events", KeyedTable).keys,
            "event listed",
        )


async def test_retry_failed_task_in_place(make_app, client, conn):
    task_id = client.spawn("flaky", {}, max_attempts=1).task_id
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot_wait_until(pilot, lambda: shows(app, task_id, "failed"), "task failed")
        await select(pilot, app, task_id)
        await pilot.press("r")
        await pilot_wait_until(pilot, lambda: isinstance(app.screen, RetryDialog), "retry dialog")
        await pilot.press("ctrl+s")
        await pilot_wait_until(
            pilot, lambda: shows(app, task_id, "completed"), "completed after retry"
        )
        row = app.main_screen.tasks_view.rows[f"default/{task_id}"]
        assert (row.attempts, row.max_attempts) == (2, 2)


async def test_retry_as_new_task(make_app, client, conn):
    task_id = client.spawn("flaky", {}, max_attempts=1).task_id
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot_wait_until(pilot, lambda: shows(app, task_id, "failed"), "task failed")
        await select(pilot, app, task_id)
        await pilot.press("r")
        await pilot_wait_until(pilot, lambda: isinstance(app.screen, RetryDialog), "retry dialog")
        await pilot.click("#new-task")
        await pilot.press("ctrl+s")
        await pilot_wait_until(
            pilot,
            lambda: conn.execute("SELECT count(*) FROM absurd.t_default").fetchone()[0] == 2,
            "a second task",
        )
        assert task_state(conn, task_id) == "failed"


async def test_actions_that_do_not_apply_are_dimmed_and_explained(make_app, client, conn):
    task_id = client.spawn("steps", {"n": 1}).task_id
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot_wait_until(pilot, lambda: shows(app, task_id, "completed"), "completed")
        await select(pilot, app, task_id)
        view = app.main_screen.tasks_view
        assert view.check_action("retry_task", ()) is None
        assert view.check_action("cancel_task", ()) is None
        assert view.check_action("open_task", ()) is True
        bindings = app.screen.active_bindings
        assert bindings["r"].enabled is False and bindings["c"].enabled is False
        await pilot.press("c")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        assert any("cannot be cancelled" in n.message for n in app._notifications)


async def test_cancel_a_sleeping_task_after_confirmation(make_app, client, conn):
    task_id = client.spawn("nap", {"seconds": 3600}).task_id
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot_wait_until(pilot, lambda: shows(app, task_id, "sleeping"), "sleeping")
        await select(pilot, app, task_id)
        await pilot.press("c")
        await pilot_wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), "confirmation")
        await pilot.press("escape")
        await pilot.pause()
        assert task_state(conn, task_id) == "sleeping"
        await pilot.press("c")
        await pilot_wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), "confirmation")
        await pilot.press("enter")
        await pilot_wait_until(
            pilot, lambda: shows(app, task_id, "cancelled"), "cancelled in the table"
        )
        assert task_state(conn, task_id) == "cancelled"


async def test_bulk_cancel_of_the_filter_states_the_count(make_app, client, conn):
    naps = [client.spawn("nap", {"seconds": 3600}).task_id for _ in range(3)]
    other = client.spawn("wait-event", {"event": "never"}).task_id
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot_wait_until(
            pilot, lambda: all(shows(app, t, "sleeping") for t in [*naps, other]), "all sleeping"
        )
        await pilot.press("slash")
        await pilot.press(*"nap")
        await pilot.press("enter")
        view = app.main_screen.tasks_view
        await pilot_wait_until(
            pilot, lambda: set(view.rows) == {f"default/{t}" for t in naps}, "filtered rows"
        )
        await pilot.press("C")
        dialog = await pilot_wait_until(
            pilot,
            lambda: app.screen if isinstance(app.screen, ConfirmDialog) else None,
            "confirmation",
        )
        assert "Cancel 3 pending, running or sleeping tasks" in str(dialog.message)
        await pilot.press("enter")
        await pilot_wait_until(
            pilot, lambda: all(task_state(conn, t) == "cancelled" for t in naps), "naps cancelled"
        )
        assert task_state(conn, other) == "sleeping"


async def test_pause_and_resume_workers(make_app, client, conn):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        pool = app.worker_pool
        await pilot_wait_until(pilot, lambda: len(pool.statuses()) == 2, "workers started")
        await pilot.press("p")
        assert pool.paused
        assert app.check_action("resume_workers", ()) is True
        assert app.check_action("pause_workers", ()) is False
        task_id = client.spawn("steps", {"n": 1}).task_id
        await pilot_wait_until(
            pilot, lambda: shows(app, task_id, "pending"), "pending in the table"
        )
        await pilot_wait_until(
            pilot,
            lambda: all(s.state in ("paused", "idle") for s in pool.statuses()),
            "threads idle",
        )
        assert task_state(conn, task_id) == "pending"
        assert "paused" in str(app.main_screen.query_one("#status").render())
        await pilot.press("p")
        assert not pool.paused
        await pilot_wait_until(
            pilot, lambda: shows(app, task_id, "completed"), "completed after resume"
        )


async def test_change_the_number_of_workers(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        pool = app.worker_pool
        await pilot_wait_until(pilot, lambda: len(pool.statuses()) == 2, "workers started")
        await pilot.press("w")
        dialog = await pilot_wait_until(
            pilot, lambda: app.screen if isinstance(app.screen, WorkersDialog) else None, "dialog"
        )
        dialog.query_one("#count", Input).value = "3"
        await pilot.press("enter")
        await pilot_wait_until(
            pilot, lambda: pool.concurrency == 3 and len(pool.statuses()) == 3, "3 threads"
        )
        await pilot.press("3")
        embedded = app.main_screen.workers_view.query_one("#embedded", KeyedTable)
        await pilot_wait_until(pilot, lambda: embedded.row_count == 3, "3 rows in the workers view")


async def test_cursor_stays_on_its_task_as_rows_move(make_app, client):
    first = client.spawn("nap", {"seconds": 3600}).task_id
    app = make_app(workers=0)
    async with app.run_test(size=SIZE) as pilot:
        await pilot_wait_until(pilot, lambda: shows(app, first, "pending"), "listed")
        await select(pilot, app, first)
        table = tasks_table(app)
        assert table.cursor_row == 0
        newer = [client.spawn("nap", {"seconds": 1}).task_id for _ in range(3)]
        await pilot_wait_until(pilot, lambda: all(row_state(app, t) for t in newer), "new rows")
        assert table.cursor_key == f"default/{first}"
        assert table.cursor_row == 3


async def test_user_data_is_shown_literally(make_app, client):
    hostile = "[bold red]x[/] [link=https://evil.example]click[/link] \x1b[31mred\x1b]8;;x\x07"
    name = "[bold red]x[/]\x1b[31mred\x07"
    task_id = client.spawn(name, {"note": hostile}, queue="default").task_id
    app = make_app(workers=0)
    async with app.run_test(size=SIZE) as pilot:
        await pilot_wait_until(pilot, lambda: row_state(app, task_id), "listed")
        table = tasks_table(app)
        cell = table.get_cell(f"default/{task_id}", "name")
        assert cell.plain == "[bold red]x[/]\\x1b[31mred\\x07"
        assert not cell.spans
        await select(pilot, app, task_id)
        await pilot.press("enter")
        detail = await pilot_wait_until(
            pilot,
            lambda: app.screen if isinstance(app.screen, TaskDetailScreen) else None,
            "detail",
        )
        await pilot_wait_until(pilot, lambda: detail.view.detail is not None, "detail loaded")
        params = str(detail.query_one("#params", Static).render())
        assert "[bold red]x[/] [link=https://evil.example]click[/link]" in params
        assert "\x1b" not in params and "\\u001b[31mred" in params


async def test_help_screen_and_command_palette_list_every_action(make_app):
    from absurd_tui.ui.actions import ACTIONS

    app = make_app(workers=0)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        help_screen = await pilot_wait_until(
            pilot, lambda: app.screen if isinstance(app.screen, HelpScreen) else None, "help"
        )
        text = "\n".join(str(s.render()) for s in help_screen.query(Static))
        for spec in ACTIONS:
            assert spec.description in text, spec.action
        await pilot.press("escape")
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"spawn")
        await pilot_wait_until(
            pilot,
            lambda: (
                any(
                    "Spawn a task" in str(o.prompt)
                    for o in app.screen.query("CommandList").first().options
                )
                if app.screen.query("CommandList")
                else False
            ),
            "spawn in the palette",
        )
        await pilot.press("enter")
        await pilot_wait_until(
            pilot, lambda: isinstance(app.screen, SpawnDialog), "spawn dialog from the palette"
        )


async def test_database_outage_shows_once_and_recovers(
    make_app, client, conn, db_dsn, pg_server_dsn
):
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict

    dbname = conninfo_to_dict(db_dsn)["dbname"]
    app = make_app(workers=1)
    async with app.run_test(size=SIZE) as pilot:
        await pilot_wait_until(
            pilot, lambda: app.connection.last_refresh is not None, "first refresh"
        )
        with psycopg.connect(pg_server_dsn, autocommit=True) as admin:
            admin.execute(
                sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(sql.Identifier(dbname))
            )
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (dbname,),
            )
            try:
                await pilot_wait_until(pilot, lambda: not app.connection.connected, "disconnected")
                bar = str(app.main_screen.query_one("#status").render())
                assert "disconnected, retrying in" in bar
                assert app.outages_reported == 1
                # Keys still work while the database is down.
                await pilot.press("2")
                await pilot.press("1")
                # An action fails with a clear message and changes nothing.
                await pilot.press("n")
                dialog = await pilot_wait_until(
                    pilot,
                    lambda: app.screen if isinstance(app.screen, SpawnDialog) else None,
                    "dialog",
                )
                dialog.query_one("#task-name", Input).value = "steps"
                await pilot.press("ctrl+s")
                await pilot_wait_until(
                    pilot,
                    lambda: any("database is unreachable" in n.message for n in app._notifications),
                    "refusal",
                )
                # Still one outage notice after several failed refreshes.
                await pilot_wait_until(pilot, lambda: app._failures >= 2, "retries")
                assert app.outages_reported == 1
            finally:
                admin.execute(
                    sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(
                        sql.Identifier(dbname)
                    )
                )
        await pilot_wait_until(pilot, lambda: app.connection.connected, "reconnected", timeout=30)
        assert any(n.message == "Reconnected to the database." for n in app._notifications)
    with psycopg.connect(db_dsn) as check:
        assert check.execute("SELECT count(*) FROM absurd.t_default").fetchone()[0] == 0


async def test_pages_of_tasks_and_search_by_short_id(make_app, client, conn):
    from absurd_tui.db.reads import short_id
    from absurd_tui.ui.screens.main import PAGE_SIZE

    conn.execute(
        "SELECT absurd.spawn_task('default', 'bulk', '{}'::jsonb) FROM generate_series(1, %s)",
        (PAGE_SIZE + 5,),
    )
    target = client.spawn("nap", {"seconds": 60}).task_id
    app = make_app(workers=0)
    async with app.run_test(size=SIZE) as pilot:
        view = app.main_screen.tasks_view
        await pilot_wait_until(pilot, lambda: len(view.rows) == PAGE_SIZE, "first page")
        assert view.check_action("prev_page", ()) is None
        await pilot.press("right_square_bracket")
        await pilot_wait_until(pilot, lambda: len(view.rows) == 6, "second page")
        assert "page 2" in str(view.query_one("#matches").render())
        await pilot.press("left_square_bracket")
        await pilot_wait_until(pilot, lambda: len(view.rows) == PAGE_SIZE, "back to the first page")
        await pilot.press("slash")
        await pilot.press(*short_id(target))
        await pilot_wait_until(
            pilot, lambda: list(view.rows) == [f"default/{target}"], "the searched task"
        )


async def test_palette_offers_the_task_actions_that_apply(make_app, client):
    from textual.command import CommandPalette

    from absurd_tui.ui.commands import ActionsProvider

    failed = client.spawn("flaky", {}, max_attempts=1).task_id
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot_wait_until(pilot, lambda: shows(app, failed, "failed"), "failed")
        await select(pilot, app, failed)
        provider = ActionsProvider(app.screen)
        titles = [spec.action for spec, _ in provider._targets()]
        assert "retry_task" in titles and "open_task" in titles and "spawn" in titles
        assert "cancel_task" not in titles
        await pilot.press("ctrl+p")
        await pilot_wait_until(pilot, lambda: isinstance(app.screen, CommandPalette), "palette")
        await pilot.press(*"retry the selected")
        await pilot_wait_until(
            pilot,
            lambda: any(
                "Retry the selected" in str(o.prompt)
                for o in app.screen.query_one("CommandList").options
            ),
            "retry in the palette",
        )
        await pilot.press("enter")
        await pilot_wait_until(
            pilot, lambda: isinstance(app.screen, RetryDialog), "retry dialog from the palette"
        )


async def test_bulk_retry_of_failed_tasks_and_state_filter_keys(make_app, client, conn):
    failed = [client.spawn("flaky", {}, max_attempts=1).task_id for _ in range(2)]
    done = client.spawn("steps", {"n": 1}).task_id
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot_wait_until(
            pilot, lambda: all(shows(app, t, "failed") for t in failed), "failed"
        )
        await pilot_wait_until(pilot, lambda: shows(app, done, "completed"), "completed")
        view = app.main_screen.tasks_view
        await pilot.press(*["s"] * 5)
        await pilot_wait_until(
            pilot,
            lambda: (
                view.flt.state == "failed" and set(view.rows) == {f"default/{t}" for t in failed}
            ),
            "failed only",
        )
        await pilot.press("R")
        dialog = await pilot_wait_until(
            pilot,
            lambda: app.screen if isinstance(app.screen, ConfirmDialog) else None,
            "confirmation",
        )
        assert "Retry 2 failed tasks" in str(dialog.message)
        await pilot.press("enter")
        await pilot_wait_until(
            pilot, lambda: all(task_state(conn, t) == "completed" for t in failed), "retried"
        )
        await pilot.press("x")
        await pilot_wait_until(
            pilot, lambda: view.flt.state is None and len(view.rows) == 3, "filter cleared"
        )
        assert app.check_action("refresh_now", ()) is True
        await pilot.press("ctrl+r")
        await pilot.press("q")
        await pilot_wait_until(pilot, lambda: not app.is_running, "quit")
    assert app.return_code == 0


async def test_detail_actions_emit_copy_and_open_from_a_wait(make_app, client, conn):
    task_id = client.spawn("wait-event", {"event": "go"}).task_id
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot_wait_until(pilot, lambda: shows(app, task_id, "sleeping"), "waiting")
        await pilot.press("2")
        events = app.main_screen.events_view
        await pilot_wait_until(pilot, lambda: events.selected_wait is not None, "wait listed")
        await pilot.press("enter")
        detail = await pilot_wait_until(
            pilot,
            lambda: app.screen if isinstance(app.screen, TaskDetailScreen) else None,
            "detail",
        )
        await pilot_wait_until(
            pilot, lambda: detail.view.detail is not None and detail.view.detail.waits, "waits"
        )
        assert detail.check_action("retry_task", ()) is None
        assert detail.check_action("cancel_task", ()) is True
        await pilot.press("y")
        assert app.clipboard == str(task_id)
        await pilot.press("e")
        dialog = await pilot_wait_until(
            pilot, lambda: app.screen if isinstance(app.screen, EmitDialog) else None, "emit"
        )
        assert dialog.query_one("#event-name", Input).value == "go"
        await pilot.press("ctrl+s")
        await pilot_wait_until(
            pilot, lambda: task_state(conn, task_id) == "completed", "woken and completed"
        )
        await pilot_wait_until(
            pilot, lambda: detail.view.detail.state == "completed", "detail shows completed"
        )
        assert detail.view.detail.result == {"got": None}


async def test_notifications_refresh_without_waiting_for_the_interval(make_app, client):
    # A 60 s refresh interval: only the NOTIFY listener can make the new task appear.
    app = make_app(workers=0, refresh=60)
    async with app.run_test(size=SIZE) as pilot:
        await pilot_wait_until(pilot, lambda: app.main_screen.tasks_view.loaded, "first load")
        task_id = client.spawn("steps", {"n": 1}).task_id
        await pilot_wait_until(
            pilot, lambda: shows(app, task_id, "pending"), "listed through NOTIFY", timeout=10
        )


async def test_a_refresh_tick_while_the_screen_lacks_its_views_polls_nothing(make_app):
    """The timer can fire while the main screen composes or tears down its tabs."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await screen.query_one("#views").remove()
        assert screen.visible_views() == []
        app.tick()
        await pilot.pause()
        assert app.is_running
