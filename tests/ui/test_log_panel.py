"""Logging inside the console goes to the log panel, never to the terminal."""

from __future__ import annotations

import logging
import threading

import pytest
from support import pilot_wait_until as wait_until
from textual.widgets import RichLog

from absurd_tui.ui.logbook import Logbook, captured
from absurd_tui.ui.screens.log import LogScreen
from absurd_tui.ui.screens.main import MainScreen
from absurd_tui.ui.widgets.status_bar import StatusBar

from .demo_app import make_app

pytestmark = pytest.mark.anyio

SIZE = (120, 30)


def status_text(app) -> str:
    return str(app.screen.query_one(StatusBar).render())


def test_captured_routes_the_root_logger_and_restores_it(capsys):
    root = logging.getLogger()
    before = root.handlers[:]
    logbook = Logbook()
    with captured(logbook):
        logging.getLogger("absurd_tui.runtime").warning("lease lost for %s", "task-1")
        assert root.handlers == [logbook]
    assert root.handlers == before
    assert capsys.readouterr().err == ""
    [entry] = logbook.entries()
    assert "lease lost for task-1" in entry.text
    assert logbook.warnings == 1


def test_captured_keeps_the_configured_formatter():
    root = logging.getLogger()
    before = root.handlers[:]
    stderr = logging.StreamHandler()
    stderr.setFormatter(logging.Formatter("FMT %(message)s"))
    root.handlers[:] = [stderr]
    try:
        logbook = Logbook()
        with captured(logbook):
            logging.getLogger("x").error("boom")
        assert logbook.entries()[0].text == "FMT boom"
    finally:
        root.handlers[:] = before


def test_logbook_keeps_the_newest_and_counts_the_dropped():
    logbook = Logbook(keep=3)
    logger = logging.getLogger("absurd_tui.test.logbook")
    logger.addHandler(logbook)
    logger.propagate = False
    try:
        for n in range(5):
            logger.warning("line %d", n)
    finally:
        logger.removeHandler(logbook)
        logger.propagate = True
    assert [e.text.rsplit(" ", 1)[1] for e in logbook.entries()] == ["2", "3", "4"]
    assert logbook.dropped == 2
    assert [e.seq for e in logbook.entries(after=4)] == [5]


async def test_a_warning_from_a_thread_raises_a_notice_and_l_shows_it():
    logbook = Logbook()
    app = make_app(logbook=logbook)
    logger = logging.getLogger("absurd_tui.test.panel")
    logger.addHandler(logbook)
    logger.propagate = False
    try:
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(pilot, lambda: isinstance(app.screen, MainScreen), "main screen")
            assert "warning" not in status_text(app)
            thread = threading.Thread(target=lambda: logger.warning("worker 1 lost its connection"))
            thread.start()
            thread.join()
            await wait_until(
                pilot, lambda: "1 warning: press l" in status_text(app), "the status bar notice"
            )
            await pilot.press("l")
            await wait_until(pilot, lambda: isinstance(app.screen, LogScreen), "the log panel")
            log = app.screen.query_one("#log", RichLog)
            await wait_until(
                pilot,
                lambda: any("worker 1 lost its connection" in line.text for line in log.lines),
                "the logged line in the panel",
            )
            assert "warning" not in status_text(app)
            # A record that arrives while the panel is open is appended to it.
            logger.error("second [bold]line[/bold]")
            await wait_until(
                pilot,
                lambda: any("second [bold]line[/bold]" in line.text for line in log.lines),
                "the new line appended, as plain text",
            )
            await pilot.press("escape")
            await wait_until(pilot, lambda: isinstance(app.screen, MainScreen), "back")
            assert "warning" not in status_text(app)
    finally:
        logger.removeHandler(logbook)
        logger.propagate = True
