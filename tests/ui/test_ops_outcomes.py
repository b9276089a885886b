"""The console reports what ops decided, in ops' words, and keeps its connection when a
statement times out (Pilot on real PostgreSQL)."""

from __future__ import annotations

import threading

import pytest
from support import pilot_wait_until as wait_until
from textual.widgets import Input, Static, TextArea

from absurd_tui import ops
from absurd_tui.db.models import TaskFilter
from absurd_tui.ui.app import AbsurdApp
from absurd_tui.ui.dialogs import ConfirmDialog, EmitDialog
from absurd_tui.ui.source import LiveSource

from .conftest import task_state
from .fakes import StaticSource

pytestmark = pytest.mark.anyio

SIZE = (160, 45)


def messages(app) -> list[str]:
    return [n.message for n in app._notifications]


async def emit_from_dialog(pilot, app, event_name: str, payload: str) -> None:
    await wait_until(pilot, lambda: app.main_screen is not None, "main screen")
    await pilot.press("e")
    await wait_until(pilot, lambda: isinstance(app.screen, EmitDialog), "emit dialog")
    await pilot.pause()
    dialog = app.screen
    dialog.query_one("#event-name", Input).value = event_name
    dialog.query_one("#payload", TextArea).text = payload
    await pilot.press("ctrl+s")
    await wait_until(pilot, lambda: not isinstance(app.screen, EmitDialog), "dialog closed")


async def test_a_repeated_emit_says_already_emitted_not_emitted(make_app, conn):
    app = make_app(workers=0)
    # Every notice shown, kept here because a toast leaves app._notifications when it
    # expires (a few seconds, which a loaded machine can take between the two emits).
    shown: list[str] = []
    notify = app.notify

    def recording_notify(message, *args, **kwargs):
        shown.append(str(message))
        return notify(message, *args, **kwargs)

    app.notify = recording_notify  # type: ignore[method-assign]
    async with app.run_test(size=SIZE) as pilot:
        await emit_from_dialog(pilot, app, "go", '{"n": 1}')
        first = 'Emitted "go" on queue "default".'
        await wait_until(pilot, lambda: first in shown, "the emit reported")
        await emit_from_dialog(pilot, app, "go", '{"n": 2}')
        await wait_until(pilot, lambda: any("already emitted" in m for m in shown), "the repeat")
        again = next(m for m in shown if "already emitted" in m)
        assert "first emit wins" in again
        # The same words as the CLI's (both come from ops), and only one "Emitted".
        assert shown.count(first) == 1
    payload = conn.execute("SELECT payload FROM absurd.e_default WHERE event_name = 'go'")
    assert payload.fetchone() == ({"n": 1},)


async def test_a_cancel_that_lost_the_race_is_not_called_cancelled(make_app, client, conn):
    task_id = client.spawn("nap", {"seconds": 3600}).task_id
    app = make_app(workers=0)
    async with app.run_test(size=SIZE) as pilot:
        view = app.main_screen.tasks_view
        key = f"default/{task_id}"
        await wait_until(pilot, lambda: key in view.rows, "task listed")
        row = view.rows[key]
        assert row.state == "pending"
        app.cancel_task(row.queue, row.task_id, row.task_name, row.state)
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), "confirmation")
        # Meanwhile a worker elsewhere runs the task to completion.
        run_id = conn.execute(
            "SELECT run_id FROM absurd.claim_task('default', 'elsewhere', 60, 1)"
        ).fetchone()[0]
        conn.execute("SELECT absurd.complete_run('default', %s, '\"done\"'::jsonb)", (run_id,))
        await pilot.press("enter")
        expected = f'Task {task_id} ("nap") became completed before it could be cancelled.'
        await wait_until(pilot, lambda: expected in messages(app), "the lost race reported")
        assert not any(m.endswith('("nap") cancelled.') for m in messages(app))
    assert task_state(conn, task_id) == "completed"


@pytest.fixture
def queues_locked(connect):
    """Hold an exclusive lock on absurd.queues (every read starts there) until released."""
    holder = connect(autocommit=False)
    holder.execute("LOCK TABLE absurd.queues IN ACCESS EXCLUSIVE MODE")
    released = threading.Event()

    def release() -> None:
        if not released.is_set():
            released.set()
            holder.rollback()

    yield release
    release()


def test_live_source_keeps_its_connection_after_a_statement_timeout(db_dsn, queues_locked):
    source = LiveSource(db_dsn, "test-db", statement_timeout_ms=200)
    try:
        with source.connection() as conn:
            pid = conn.info.backend_pid
        with pytest.raises(ops.TimedOut) as caught:
            source.tasks(TaskFilter(), 10, None, True)
        assert not caught.value.unreachable
        queues_locked()
        snapshot = source.tasks(TaskFilter(), 10, None, True)
        assert snapshot.page.rows == ()
        with source.connection() as conn:
            assert conn.info.backend_pid == pid  # the same connection, never dropped
    finally:
        source.close()


def test_live_source_drops_a_connection_that_was_lost(db_dsn, connect):
    source = LiveSource(db_dsn, "test-db")
    try:
        with source.connection() as conn:
            pid = conn.info.backend_pid
        connect().execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(ops.ConnectionLost):
            source.queue_names()
        with source.connection() as conn:
            assert conn.info.backend_pid != pid
    finally:
        source.close()


async def test_console_stays_connected_through_a_statement_timeout(
    db_dsn, registry, client, queues_locked
):
    source = LiveSource(db_dsn, "test-db", registry=registry, statement_timeout_ms=200)
    app = AbsurdApp(source, refresh=0.5)
    try:
        async with app.run_test(size=SIZE) as pilot:
            error = app.main_screen.query_one("#tasks-error", Static)
            await wait_until(
                pilot, lambda: "took too long" in str(error.render()), "the timeout shown"
            )
            assert app.connection.connected and app.outages_reported == 0
            assert not any("unreachable" in m for m in messages(app))
            queues_locked()
            await wait_until(pilot, lambda: str(error.render()) == "", "the error cleared")
            assert app.connection.connected and app.outages_reported == 0
    finally:
        source.close()


async def test_setting_the_theme_before_the_app_runs_does_not_break_refreshes():
    # The theme watcher once tested a bound method (`if self.is_mounted:`, always true)
    # and asked for a refresh before the app ran: that raised, and left the refresh
    # flag stuck, so the app never refreshed on request again.
    source = StaticSource()
    app = AbsurdApp(source, listen=False)
    app.theme = "textual-light"
    assert app._refresh_pending is False
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.request_refresh()
        assert app._refresh_pending is True
        await wait_until(pilot, lambda: not app._refresh_pending, "the refresh to run")
