"""q while a task runs: say what it waits for, claim nothing more, hand the task back."""

from __future__ import annotations

import time
import uuid

import pytest
from psycopg import sql
from support import pilot_wait_until as wait_until

from absurd_tui.ui.screens.main import MainScreen
from absurd_tui.ui.widgets.status_bar import StatusBar

from .conftest import task_state

pytestmark = pytest.mark.anyio

SIZE = (120, 30)


def run_row(conn, task_id: uuid.UUID) -> tuple[str, int, str | None]:
    row = conn.execute(
        sql.SQL(
            "SELECT r.state, r.attempt, r.claimed_by FROM {} AS r WHERE r.task_id = %s "
            "ORDER BY r.attempt DESC LIMIT 1"
        ).format(sql.Identifier("absurd", "r_default")),
        (task_id,),
    ).fetchone()
    return row


def checkpoints(conn, task_id: uuid.UUID) -> int:
    return conn.execute(
        sql.SQL("SELECT count(*) FROM {} WHERE task_id = %s").format(
            sql.Identifier("absurd", "c_default")
        ),
        (task_id,),
    ).fetchone()[0]


def status_text(app) -> str:
    return str(app.screen.query_one(StatusBar).render())


async def test_q_with_a_running_task_says_so_and_hands_it_back(make_app, client, conn):
    app = make_app(workers=1)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, MainScreen), "main screen")
        task_id = uuid.UUID(str(client.spawn("slow", {"steps": 500})["task_id"]))
        await wait_until(pilot, lambda: task_state(conn, task_id) == "running", "running")
        await wait_until(pilot, lambda: checkpoints(conn, task_id) >= 2, "two steps done")
        await wait_until(pilot, lambda: app.worker_state().busy == 1, "the worker busy")
        await pilot.press("q")
        await wait_until(
            pilot,
            lambda: "stopping: 1 task running; q again to leave now" in status_text(app),
            "the quit notice",
        )
        assert app.stopping
        pressed = time.monotonic()
        await pilot.press("q")
        await wait_until(pilot, lambda: app.handed_back is not None, "the workers stopped")
        took = time.monotonic() - pressed
    assert app.handed_back == 1
    # Handed back: pending again, attempt 1 kept (max_attempts is 1), no lease, and the
    # steps already done stay done for whoever claims it next.
    assert task_state(conn, task_id) == "pending"
    state, attempt, claimed_by = run_row(conn, task_id)
    assert (state, attempt, claimed_by) == ("pending", 1, None)
    assert checkpoints(conn, task_id) >= 2
    assert took < 5.0


async def test_q_with_nothing_running_leaves_at_once(make_app):
    app = make_app(workers=2)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, MainScreen), "main screen")
        await wait_until(pilot, lambda: len(app.worker_pool.statuses()) == 2, "workers up")
        await pilot.press("q")
        await wait_until(pilot, lambda: app.handed_back is not None, "the workers stopped")
    assert app.handed_back == 0
    assert not app.worker_pool.running


async def test_q_after_the_grace_period_hands_back_by_itself(make_app, client, conn, monkeypatch):
    monkeypatch.setattr("absurd_tui.ui.app.QUIT_GRACE", 0.5)
    app = make_app(workers=1)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, MainScreen), "main screen")
        task_id = uuid.UUID(str(client.spawn("slow", {"steps": 500})["task_id"]))
        await wait_until(pilot, lambda: task_state(conn, task_id) == "running", "running")
        await wait_until(pilot, lambda: app.worker_state().busy == 1, "the worker busy")
        await pilot.press("q")
        await wait_until(pilot, lambda: app.handed_back is not None, "the workers stopped")
    assert app.handed_back == 1
    assert task_state(conn, task_id) == "pending"
